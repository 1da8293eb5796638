using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;

namespace CvrlServe.Core.Tests.Probes;

public sealed class LinearProbeTests
{
    /// <summary>Clusters around random directions in 64-d (one per name; clap, jump, wave by default), noise well below their separation.</summary>
    internal static List<(float[] Features, string Label)> Clusters(int perClass, int seed, double noise = 0.15, int dimension = 64, string[]? names = null)
    {
        names ??= ["clap", "jump", "wave"];
        var random = new Random(42);
        var centres = Enumerable.Range(0, names.Length).Select(_ => Enumerable.Range(0, dimension).Select(_ => (float)Gaussian(random)).ToArray()).ToArray();
        random = new Random(seed);
        var examples = new List<(float[], string)>();
        for (int c = 0; c < names.Length; c++)
        {
            for (int i = 0; i < perClass; i++)
            {
                examples.Add((centres[c].Select(v => (float)(v / Math.Sqrt(dimension) + noise * Gaussian(random) / Math.Sqrt(dimension) * 3)).ToArray(), names[c]));
            }
        }

        return examples;
    }

    /// <summary>Each example its own group: independent draws, not clips of one video.</summary>
    internal static List<(float[] Features, string Label, string Group)> Grouped(IEnumerable<(float[] Features, string Label)> examples) =>
        examples.Select((e, i) => (e.Features, e.Label, $"g{i}")).ToList();

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static double Accuracy(LinearProbe probe, IEnumerable<(float[] Features, string Label)> test) =>
        test.Average(t => probe.Classes[Array.IndexOf(probe.Predict(t.Features), probe.Predict(t.Features).Max())] == t.Label ? 1.0 : 0.0);

    [Theory]
    [InlineData(ProbeTrainer.Lbfgs)]
    [InlineData(ProbeTrainer.Sdca)]
    public void Fit_WellSeparatedEmbeddings_AtLeast99PercentOnHeldOutData(ProbeTrainer trainer)
    {
        var (probe, l2, sweep) = ProbeTraining.Fit(Grouped(Clusters(40, seed: 1)), new ProbeTrainingOptions(trainer));
        Assert.Equal(["clap", "jump", "wave"], probe.Classes);
        Assert.Equal(6, sweep.Count);
        Assert.Contains(l2, new ProbeTrainingOptions().Candidates);
        Assert.True(Accuracy(probe, Clusters(30, seed: 2)) >= 0.99);
        var p = probe.Predict(Clusters(1, seed: 3)[0].Features);
        Assert.Equal(1f, p.Sum(), 3);
    }

    [Fact]
    public async Task Predict_FromManyThreads_SameAsSequential()
    {
        var (probe, _, _) = ProbeTraining.Fit(Grouped(Clusters(20, seed: 1)), new ProbeTrainingOptions(L2Candidates: [0.01]));
        var inputs = Clusters(30, seed: 4).Select(t => t.Features).ToArray();
        var sequential = inputs.Select(probe.Predict).ToArray();
        var parallel = await Task.WhenAll(inputs.Select(x => Task.Run(() => probe.Predict(x))));
        Assert.Equal(sequential, parallel);
    }

    [Fact]
    public void Evaluate_HandCountedConfusionPrecisionRecallAndLogLoss()
    {
        string[] classes = ["a", "b"];
        var metrics = ProbeEvaluation.Evaluate(classes,
        [
            ("a", [0.9f, 0.1f]),
            ("a", [0.4f, 0.6f]),
            ("b", [0.2f, 0.8f]),
        ]);
        Assert.Equal(2.0 / 3, metrics.Top1, 6);
        Assert.Equal(1.0, metrics.Top5);
        Assert.Equal([[1, 1], [0, 1]], metrics.Confusion);
        Assert.Equal([1.0, 0.5], metrics.Precision);
        Assert.Equal([0.5, 1.0], metrics.Recall);
        Assert.Equal(-(Math.Log(0.9) + Math.Log(0.4) + Math.Log(0.8)) / 3, metrics.LogLoss, 5);
        Assert.Equal([0.5f, 0.5f], ProbeEvaluation.AverageViews([[1f, 0f], [0f, 1f]]));
    }

    internal static ProbeMetadata Metadata(string name, EncoderManifest manifest, LinearProbe probe, double l2, IReadOnlyList<SweepResult> sweep) => new()
    {
        Name = name,
        Encoder = manifest.Name,
        ModelId = manifest.ModelId,
        EmbeddingSize = manifest.Output.Dimension,
        Classes = probe.Classes,
        Trainer = ProbeTrainer.Lbfgs,
        L2 = l2,
        Sweep = sweep,
    };
}
