using System.Diagnostics.Metrics;

namespace CvrlServe.Core.Inference;

/// <summary>
/// Core's instruments (meter <c>CvrlServe.Core</c>, System.Diagnostics.Metrics): what a host exports if it
/// listens, and costs nothing if none does. Tagged by model name.
/// </summary>
internal static class InferenceMetrics
{
    public const string MeterName = "CvrlServe.Core";
    private static readonly Meter Meter = new(MeterName);

    /// <summary>Clips per encoder run (the micro-batcher's batch size).</summary>
    public static readonly Histogram<int> BatchSize = Meter.CreateHistogram<int>("batch_size", "{clip}", "Clips per encoder batch");

    /// <summary>Seconds per encoder run.</summary>
    public static readonly Histogram<double> BatchDuration = Meter.CreateHistogram<double>("batch_duration", "s", "Encoder time per batch");
}
