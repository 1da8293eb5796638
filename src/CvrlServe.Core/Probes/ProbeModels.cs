using System.Text.Json.Serialization;

namespace CvrlServe.Core.Probes;

/// <summary>Which ML.NET trainer fits the linear probe.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<ProbeTrainer>))]
public enum ProbeTrainer
{
    /// <summary>L-BFGS multinomial logistic regression, L1 = 0, L2 chosen by a validation sweep.</summary>
    Lbfgs,

    /// <summary>SDCA maximum entropy, L2 chosen by the same sweep.</summary>
    Sdca,
}

/// <summary>How to fit a probe.</summary>
/// <param name="L2Candidates">L2 strengths tried on a held-out split of the training videos; the best is refit on all.</param>
/// <param name="ValidationFraction">Share of each class's videos held out for the sweep (at least one video per class stays in training).</param>
public sealed record ProbeTrainingOptions(
    ProbeTrainer Trainer = ProbeTrainer.Lbfgs,
    double[]? L2Candidates = null,
    double ValidationFraction = 0.2,
    int Seed = 0)
{
    /// <summary>The L2 strengths swept: by default none at all (CVRL trains its linear layer with weight decay 0), then a decade ladder.</summary>
    public double[] Candidates => L2Candidates ?? [0, 1e-4, 1e-3, 1e-2, 1e-1, 1.0];
}

/// <summary>One L2 strength tried in the sweep and how it did on the held-out split.</summary>
public sealed record SweepResult(double L2, double Accuracy, double LogLoss);

/// <summary>Top-1/top-5, per-class precision and recall, confusion matrix (rows: true, columns: predicted), log-loss.</summary>
public sealed record ProbeMetrics(
    int Examples,
    double Top1,
    double Top5,
    double LogLoss,
    IReadOnlyList<string> Classes,
    IReadOnlyList<double> Precision,
    IReadOnlyList<double> Recall,
    int[][] Confusion);

/// <summary>
/// A probe's record (<c>NAME.json</c>, also stored inside <c>NAME.zip</c>): the embedding space it is bound
/// to (<see cref="ModelId"/>), its classes in score order, how it was trained and on what, and how it scored.
/// Schema 3 adds the view the probe's features were taken with (<see cref="View"/>, <see cref="Preset"/>:
/// it may differ from the manifest's, and then <see cref="ModelId"/> is that view's space, see
/// <see cref="ProbeFeatures.SpaceOf"/>) and how its training features were made (<see cref="Features"/>);
/// its models standardize features per dimension inside the ML.NET pipeline. Schema 2 records stay
/// loadable: their model id is the manifest's own, and their pipelines (without the standardization) still
/// predict exactly as they were trained. Schema 1 bound probes to the ONNX file's hash only, which does not
/// say what view the features came from, so such probes are refused and must be retrained. Schema 2 code
/// refuses schema 3 records: it would score a preset probe with the manifest's view.
/// </summary>
public sealed record ProbeMetadata
{
    public const int CurrentSchemaVersion = 3;

    /// <summary>The oldest record this version loads.</summary>
    public const int MinimumSchemaVersion = 2;

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    public required string Name { get; init; }

    /// <summary>The model's name when the probe was trained, for people; <see cref="ModelId"/> is what is checked.</summary>
    public required string Encoder { get; init; }

    /// <summary>The <see cref="Inference.EncoderManifest.ModelId"/> of the model whose embeddings trained the probe.</summary>
    public required string ModelId { get; init; }

    public required int EmbeddingSize { get; init; }

    public required IReadOnlyList<string> Classes { get; init; }

    public required ProbeTrainer Trainer { get; init; }

    public required double L2 { get; init; }

    /// <summary>The evaluation preset (<see cref="EvaluationPresets"/>) whose view the probe's features use; null for the manifest's view.</summary>
    public string? Preset { get; init; }

    /// <summary>The view the probe's features were taken with (schema 3); evaluation must use the same (its model id says so).</summary>
    public Inference.ViewSpec? View { get; init; }

    /// <summary>How the training features were made: clips per video, seed, augmentation, flip, training crop, single-frame (schema 3).</summary>
    public ProbeFeatureOptions? Features { get; init; }

    public IReadOnlyList<SweepResult> Sweep { get; init; } = [];

    /// <summary>SHA-256 over the training examples' sources and labels: which data made this probe.</summary>
    public string? DataFingerprint { get; init; }

    public int TrainingExamples { get; init; }

    public ProbeMetrics? TrainingMetrics { get; init; }

    public ProbeMetrics? EvaluationMetrics { get; init; }

    public DateTimeOffset CreatedUtc { get; init; } = DateTimeOffset.UtcNow;
}

/// <summary>A probe does not belong to the model it is used with (another model id, schema or embedding size).</summary>
public sealed class ProbeMismatchException(string message, string? detail = null) : CvrlException(ErrorKind.InvalidArgument, message, detail);

/// <summary>No probe of that name for the model.</summary>
public sealed class ProbeNotFoundException(string probe, string model, IReadOnlyList<string> known, string? detail = null)
    : CvrlException(ErrorKind.NotFound, $"No probe '{probe}' for model '{model}'. Probes: {(known.Count == 0 ? "none" : string.Join(", ", known))}.", detail)
{
    public string Probe { get; } = probe;
}

/// <summary>A stored probe that cannot be read: not a probe zip, a damaged one, or a record its model disagrees with.</summary>
public sealed class ProbeCorruptException(string probe, string model, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.Corrupt, $"Probe '{probe}' of model '{model}' is damaged and cannot be loaded. Train or save it again.", detail, inner)
{
    public string Probe { get; } = probe;
}
