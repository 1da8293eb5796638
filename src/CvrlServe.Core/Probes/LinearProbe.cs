using System.Collections.Concurrent;
using Microsoft.ML;
using Microsoft.ML.Data;
using Microsoft.ML.Trainers;

namespace CvrlServe.Core.Probes;

/// <summary>One training or prediction row: an L2-normalized embedding and (for training) its label.</summary>
public sealed class ProbeRow
{
    public float[] Features { get; set; } = [];

    public string Label { get; set; } = "";
}

/// <summary>What ML.NET writes for a row: the class probabilities in the model's key order.</summary>
public sealed class ProbeScore
{
    public float[] Score { get; set; } = [];
}

/// <summary>
/// A multiclass linear classifier on frozen embeddings (CVRL's linear evaluation), trained with ML.NET.
/// Thread-safe: prediction engines (not thread-safe themselves) come from a pool.
/// </summary>
public sealed class LinearProbe
{
    private readonly MLContext _ml;
    private readonly ITransformer _model;
    private readonly SchemaDefinition _schema;
    private readonly ConcurrentBag<PredictionEngine<ProbeRow, ProbeScore>> _engines = [];
    private readonly int[] _scoreToClass;

    internal LinearProbe(MLContext ml, ITransformer model, int dimension, IReadOnlyList<string> classes)
    {
        _ml = ml;
        _model = model;
        Dimension = dimension;
        Classes = classes;
        _schema = Schema(dimension);
        // ML.NET scores follow its key order; map them to the probe's class order once.
        var engine = Rent();
        VBuffer<ReadOnlyMemory<char>> names = default;
        engine.OutputSchema["Score"].GetSlotNames(ref names);
        var order = names.DenseValues().Select(n => n.ToString()).ToArray();
        _scoreToClass = order.Select(n => classes.ToList().IndexOf(n)).ToArray();
        Return(engine);
        if (order.Length != classes.Count || _scoreToClass.Contains(-1) || _scoreToClass.Distinct().Count() != classes.Count)
        {
            // A record paired with another version's model: refuse rather than score against the wrong names.
            throw new InvalidDataException($"The model scores [{string.Join(", ", order)}] but the record names [{string.Join(", ", classes)}].");
        }
    }

    public int Dimension { get; }

    /// <summary>Classes in the order <see cref="Predict"/> returns their probabilities.</summary>
    public IReadOnlyList<string> Classes { get; }

    internal ITransformer Model => _model;

    /// <summary>
    /// Fits a probe with the given L2 on L2-normalized embeddings, standardized per dimension:
    /// (x − μ) / σ with μ and σ fitted on these examples and saved with the probe, so prediction applies
    /// the same transform. Without it, dimensions that carry little of the unit norm (a common direction
    /// dominating every embedding) need huge weights, which any L2 penalty forbids.
    /// <paramref name="standardize"/> false fits on the normalized features as they are (what schema-2
    /// probes did; kept for comparisons).
    /// </summary>
    public static LinearProbe Train(IReadOnlyList<(float[] Features, string Label)> examples, ProbeTrainer trainer, double l2, int seed = 0, bool standardize = true)
    {
        ArgumentNullException.ThrowIfNull(examples);
        if (examples.Count == 0)
        {
            throw new ArgumentException("A probe needs training examples.", nameof(examples));
        }

        int dimension = examples[0].Features.Length;
        var classes = examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
        if (classes.Length < 2)
        {
            throw new ArgumentException("A probe needs at least two classes.", nameof(examples));
        }

        var ml = new MLContext(seed);
        var data = ml.Data.LoadFromEnumerable(examples.Select(e => new ProbeRow { Features = Normalized(e.Features), Label = e.Label }), Schema(dimension));
        // Keys by value, so the score order is the sorted class order; the cache spares SDCA's passes a re-read.
        var keys = ml.Transforms.Conversion.MapValueToKey("Label", "Label", keyOrdinality: Microsoft.ML.Transforms.ValueToKeyMappingEstimator.KeyOrdinality.ByValue);
        IEstimator<ITransformer> fit = trainer switch
        {
            ProbeTrainer.Lbfgs => ml.MulticlassClassification.Trainers.LbfgsMaximumEntropy(new LbfgsMaximumEntropyMulticlassTrainer.Options
            {
                L1Regularization = 0,
                L2Regularization = (float)l2,
                FeatureColumnName = "Features",
                LabelColumnName = "Label",
            }),
            _ => ml.MulticlassClassification.Trainers.SdcaMaximumEntropy(new SdcaMaximumEntropyMulticlassTrainer.Options
            {
                L1Regularization = 0,
                L2Regularization = (float)l2,
                FeatureColumnName = "Features",
                LabelColumnName = "Label",
                NumberOfThreads = 1,
            }),
        };
        // fixZero: false makes it (x − μ)/σ; the default (true) only scales, keeping zero at zero, which
        // leaves a shared offset in place.
        var prepared = standardize
            ? keys.Append(ml.Transforms.NormalizeMeanVariance("Features", fixZero: false))
            : (IEstimator<ITransformer>)keys;
        var pipeline = prepared.AppendCacheCheckpoint(ml).Append(fit);
        return new LinearProbe(ml, pipeline.Fit(data), dimension, classes);
    }

    /// <summary>Class probabilities (in <see cref="Classes"/> order) for one embedding.</summary>
    public float[] Predict(float[] features)
    {
        ArgumentNullException.ThrowIfNull(features);
        if (features.Length != Dimension)
        {
            throw new ProbeMismatchException($"The probe takes {Dimension}-d embeddings, not {features.Length}-d.");
        }

        var engine = Rent();
        try
        {
            var scores = engine.Predict(new ProbeRow { Features = Normalized(features) }).Score;
            var probabilities = new float[Classes.Count];
            for (int s = 0; s < scores.Length; s++)
            {
                probabilities[_scoreToClass[s]] = scores[s];
            }

            return probabilities;
        }
        finally
        {
            Return(engine);
        }
    }

    /// <summary>Saves the ML.NET model as a zip.</summary>
    internal void Save(Stream stream) => _ml.Model.Save(_model, _ml.Data.LoadFromEnumerable(Array.Empty<ProbeRow>(), _schema).Schema, stream);

    internal static LinearProbe Load(Stream stream, int dimension, IReadOnlyList<string> classes)
    {
        var ml = new MLContext(0);
        var model = ml.Model.Load(stream, out _);
        return new LinearProbe(ml, model, dimension, classes);
    }

    /// <summary>A copy scaled to unit L2 norm (probes always see normalized features, as in CVRL).</summary>
    public static float[] Normalized(float[] features)
    {
        ArgumentNullException.ThrowIfNull(features);
        double sum = features.Sum(x => (double)x * x);
        float scale = sum > 0 ? (float)(1 / Math.Sqrt(sum)) : 0f;
        return features.Select(x => x * scale).ToArray();
    }

    private static SchemaDefinition Schema(int dimension)
    {
        var schema = SchemaDefinition.Create(typeof(ProbeRow));
        schema[nameof(ProbeRow.Features)].ColumnType = new VectorDataViewType(NumberDataViewType.Single, dimension);
        return schema;
    }

    private PredictionEngine<ProbeRow, ProbeScore> Rent() =>
        _engines.TryTake(out var engine) ? engine : _ml.Model.CreatePredictionEngine<ProbeRow, ProbeScore>(_model, inputSchemaDefinition: _schema);

    private void Return(PredictionEngine<ProbeRow, ProbeScore> engine) => _engines.Add(engine);
}
