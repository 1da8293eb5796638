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
/// <param name="ValidationFraction">Share of training examples held out for the sweep (per class, at least one).</param>
public sealed record ProbeTrainingOptions(
    ProbeTrainer Trainer = ProbeTrainer.Lbfgs,
    double[]? L2Candidates = null,
    double ValidationFraction = 0.2,
    int Seed = 0)
{
    public double[] Candidates => L2Candidates ?? [1e-4, 1e-3, 1e-2, 1e-1, 1.0];
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
/// Schema 2 binds probes to the model id; schema 1 bound them to the ONNX file's hash only, which does not
/// say what view the features came from, so such probes are refused and must be retrained.
/// </summary>
public sealed record ProbeMetadata
{
    public const int CurrentSchemaVersion = 2;

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
