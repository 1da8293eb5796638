using CvrlServe.Core.Inference;

namespace CvrlServe.Api.Hosting;

/// <summary>One structured log line per embedded or classified upload: request id, model and model id, stage times.</summary>
public sealed partial class RequestLog(ILogger<RequestLog> logger)
{
    public void Served(HttpContext context, string operation, string model, string modelId, string sha256, StageTimings timings)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(timings);
        LogServed(logger, context.TraceIdentifier, operation, model, modelId, sha256, timings.Probe.TotalMilliseconds, timings.Decode.TotalMilliseconds,
            timings.Queue.TotalMilliseconds, timings.Inference.TotalMilliseconds, timings.Total.TotalMilliseconds);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId}: {Operation} with {Model} ({ModelId}) of upload {Sha256}: probe {ProbeMs:F0} ms, decode {DecodeMs:F0} ms, queue {QueueMs:F0} ms, inference {InferenceMs:F0} ms, total {TotalMs:F0} ms")]
    private static partial void LogServed(ILogger logger, string requestId, string operation, string model, string modelId, string sha256,
        double probeMs, double decodeMs, double queueMs, double inferenceMs, double totalMs);
}
