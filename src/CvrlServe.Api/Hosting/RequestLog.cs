using CvrlServe.Core.Inference;
using Microsoft.Extensions.Primitives;

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

/// <summary>
/// The request id every log line and problem of a request carries (<see cref="HttpContext.TraceIdentifier"/>):
/// the incoming <c>X-Request-Id</c> (a gateway's or a client's) when it is one value of 1–128 token
/// characters (ASCII letters, digits, <c>. _ : -</c>), else a new one (32 hex digits), so one id follows a
/// request through the gateway's and the service's logs. A header that is anything else (line breaks, a
/// 10 KB value, two values) is ignored rather than logged. The id is returned as <c>X-Request-Id</c>.
/// </summary>
public static class RequestIds
{
    public const string HeaderName = "X-Request-Id";
    public const int MaxLength = 128;

    public static bool IsValid(string? id) =>
        id is { Length: > 0 and <= MaxLength } && id.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-');

    /// <summary>Adopts or makes the request id; first in the pipeline, so everything after sees it.</summary>
    public static IApplicationBuilder UseRequestIds(this IApplicationBuilder app) => app.Use(async (context, next) =>
    {
        StringValues sent = context.Request.Headers[HeaderName];
        string id = sent.Count == 1 && IsValid(sent[0]) ? sent[0]! : Guid.NewGuid().ToString("N");
        context.TraceIdentifier = id;
        // On starting, not now: the exception handler clears the headers of a response it replaces.
        context.Response.OnStarting(() =>
        {
            context.Response.Headers[HeaderName] = id;
            return Task.CompletedTask;
        });
        await next(context);
    });
}
