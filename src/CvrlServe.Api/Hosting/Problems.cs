using CvrlServe.Core;
using Microsoft.AspNetCore.Diagnostics;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// Every error the service answers, as problem+json with a stable <c>type</c> (<c>urn:cvrlserve:problem:SLUG</c>).
/// Core's error kinds map to statuses here and nowhere else. Bodies carry Core's client-safe message; the
/// diagnostic detail (paths, ffmpeg's stderr) goes to the log only.
/// </summary>
public static class Problems
{
    public const string TypePrefix = "urn:cvrlserve:problem:";

    public static ProblemHttpResult Create(int status, string slug, string title, string detail, IDictionary<string, object?>? extensions = null) =>
        TypedResults.Problem(new ProblemDetails { Status = status, Type = TypePrefix + slug, Title = title, Detail = detail, Extensions = extensions ?? new Dictionary<string, object?>() });

    public static ProblemHttpResult Invalid(string field, string detail) =>
        Create(StatusCodes.Status400BadRequest, "invalid-argument", "Invalid request", detail, new Dictionary<string, object?> { ["field"] = field });

    public static ProblemHttpResult NotFound(string detail) => Create(StatusCodes.Status404NotFound, "not-found", "Not found", detail);

    public static ProblemHttpResult Conflict(string detail) => Create(StatusCodes.Status409Conflict, "conflict", "Conflict", detail);

    public static ProblemHttpResult TooLarge(long maximum) => Create(StatusCodes.Status413PayloadTooLarge, "payload-too-large", "Upload too large",
        $"The upload is larger than the {maximum} bytes this service accepts.", new Dictionary<string, object?> { ["limit"] = "fileSize", ["maximum"] = maximum, ["unit"] = "bytes" });

    public static ProblemHttpResult UnsupportedMediaType(string detail) => Create(StatusCodes.Status415UnsupportedMediaType, "unsupported-media", "Unsupported media", detail);

    /// <summary>The problem for one of Core's errors, and what the Retry-After header must say, if anything.</summary>
    public static (ProblemHttpResult Problem, TimeSpan? RetryAfter) From(CvrlException error)
    {
        ArgumentNullException.ThrowIfNull(error);
        return error switch
        {
            ProbeReadOnlyException e => (Conflict(e.Message), null),
            Core.Probes.ProbeCorruptException e => (Create(StatusCodes.Status500InternalServerError, "probe-damaged", "Probe damaged", e.Message), null),
            LimitExceededException { Limit: Limit.FileSize } e => (TooLarge((long)e.Maximum), null),
            LimitExceededException { Limit: Limit.QueuedBytes } e => (Create(StatusCodes.Status503ServiceUnavailable, "overloaded", "Service busy", e.Message), TimeSpan.FromSeconds(2)),
            LimitExceededException e => (Create(StatusCodes.Status422UnprocessableEntity, "limit-exceeded", "Limit exceeded", e.Message, new Dictionary<string, object?>
            {
                ["limit"] = JsonNamingPolicyName(e.Limit.ToString()),
                ["actual"] = e.Actual,
                ["maximum"] = e.Maximum,
                ["unit"] = e.Unit,
            }), null),
            OverloadedException e => (Create(StatusCodes.Status503ServiceUnavailable, "overloaded", "Service busy", e.Message), e.RetryAfter),
            _ => error.Kind switch
            {
                ErrorKind.InvalidArgument => (Create(StatusCodes.Status400BadRequest, "invalid-argument", "Invalid request", error.Message), null),
                ErrorKind.NotFound => (NotFound(error.Message), null),
                ErrorKind.UnsupportedMedia => (UnsupportedMediaType(error.Message), null),
                ErrorKind.Corrupt => (Create(StatusCodes.Status422UnprocessableEntity, "undecodable", "Undecodable video", error.Message), null),
                ErrorKind.Timeout => (Create(StatusCodes.Status504GatewayTimeout, "timeout", "Deadline exceeded", error.Message), null),
                ErrorKind.NotReady => (Create(StatusCodes.Status503ServiceUnavailable, "not-ready", "Not ready", error.Message), TimeSpan.FromSeconds(5)),
                _ => (Create(StatusCodes.Status503ServiceUnavailable, "overloaded", "Service busy", error.Message), TimeSpan.FromSeconds(2)),
            },
        };
    }

    /// <summary>
    /// Gives the problems ASP.NET Core writes itself (routing's 404/405/415, status-code pages, model binding)
    /// the same stable types as ours, and every problem the request id (<see cref="RequestIds"/>) as
    /// <c>requestId</c>, beside ASP.NET Core's <c>traceId</c> (the W3C trace).
    /// </summary>
    public static void Stabilize(ProblemDetailsContext context)
    {
        ArgumentNullException.ThrowIfNull(context);
        var problem = context.ProblemDetails;
        problem.Extensions["requestId"] = context.HttpContext.TraceIdentifier;
        if (problem.Type?.StartsWith(TypePrefix, StringComparison.Ordinal) == true)
        {
            return;
        }

        problem.Type = TypePrefix + (problem.Status switch
        {
            400 => "bad-request",
            401 => "unauthorized",
            403 => "forbidden",
            404 => "not-found",
            405 => "method-not-allowed",
            413 => "payload-too-large",
            415 => "unsupported-media",
            429 => "rate-limited",
            _ when problem.Status >= 500 => "internal",
            _ => "error",
        });
        if (problem.Status == 415)
        {
            problem.Detail ??= "Send multipart/form-data for uploads and application/json for JSON bodies.";
        }
    }

    private static string JsonNamingPolicyName(string name) => char.ToLowerInvariant(name[0]) + name[1..];

    /// <summary>Writes a problem, with Retry-After when it has one.</summary>
    public static async Task WriteAsync(HttpContext context, ProblemHttpResult problem, TimeSpan? retryAfter)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(problem);
        if (retryAfter is { } wait)
        {
            context.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        }

        await problem.ExecuteAsync(context);
    }
}

/// <summary>
/// Turns exceptions that escape a handler into problems: Core's errors by kind, Kestrel's body-size and
/// malformed-request errors, a deadline that fired (504). Anything else is a 500 that says nothing about
/// the server; the exception goes to the log.
/// </summary>
public sealed partial class CvrlExceptionHandler(ILogger<CvrlExceptionHandler> logger) : IExceptionHandler
{
    public async ValueTask<bool> TryHandleAsync(HttpContext httpContext, Exception exception, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        if (httpContext.RequestAborted.IsCancellationRequested)
        {
            // The client left: nobody reads an answer.
            LogClientGone(logger, httpContext.TraceIdentifier);
            return true;
        }

        var (problem, retryAfter) = Describe(httpContext, exception);
        await Problems.WriteAsync(httpContext, problem, retryAfter);
        return true;
    }

    /// <summary>The problem for <paramref name="exception"/>, logged with the request id (Core's detail goes to the log only).</summary>
    public (ProblemHttpResult Problem, TimeSpan? RetryAfter) Describe(HttpContext httpContext, Exception exception)
    {
        ArgumentNullException.ThrowIfNull(httpContext);
        var (problem, retryAfter) = exception switch
        {
            ApiProblemException e => (e.Problem, e.RetryAfter),
            CvrlException e => Problems.From(e),
            BadHttpRequestException { InnerException: System.Text.Json.JsonException json } => (Problems.Invalid(json.Path ?? "body",
                $"The JSON body could not be read{(json.Path is null ? "" : $" at '{json.Path}'")}: check the value's type and the syntax."), null),
            BadHttpRequestException { StatusCode: StatusCodes.Status413PayloadTooLarge } => (Problems.Create(413, "payload-too-large", "Upload too large", "The request body is larger than this service accepts."), null),
            BadHttpRequestException e => (Problems.Create(e.StatusCode, "bad-request", "Bad request", "The request could not be read."), (TimeSpan?)null),
            _ => (Problems.Create(500, "internal", "Internal error", $"The request failed inside the service. Request id: {httpContext.TraceIdentifier}."), null),
        };

        if (exception is CvrlException cvrl)
        {
            LogProblem(logger, httpContext.TraceIdentifier, cvrl.Kind.ToString(), cvrl.Message, cvrl.Detail);
        }
        else if (problem.StatusCode >= 500)
        {
            LogUnhandled(logger, exception, httpContext.TraceIdentifier);
        }

        return (problem, retryAfter);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Request {RequestId}: the client disconnected")]
    private static partial void LogClientGone(ILogger logger, string requestId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Request {RequestId}: {Kind}: {Message} ({Detail})")]
    private static partial void LogProblem(ILogger logger, string requestId, string kind, string message, string? detail);

    [LoggerMessage(Level = LogLevel.Error, Message = "Request {RequestId} failed")]
    private static partial void LogUnhandled(ILogger logger, Exception exception, string requestId);
}

/// <summary>
/// Answers the errors of the /v1 endpoints as their problems inside the endpoint, so routing, metrics
/// (route and status) and logs see the endpoint that failed; the exception handler stays the backstop.
/// </summary>
public sealed class ProblemFilter(CvrlExceptionHandler handler) : IEndpointFilter
{
    public async ValueTask<object?> InvokeAsync(EndpointFilterInvocationContext context, EndpointFilterDelegate next)
    {
        ArgumentNullException.ThrowIfNull(context);
        ArgumentNullException.ThrowIfNull(next);
        try
        {
            return await next(context);
        }
        catch (Exception e) when (e is ApiProblemException or CvrlException or BadHttpRequestException && !context.HttpContext.RequestAborted.IsCancellationRequested)
        {
            var (problem, retryAfter) = handler.Describe(context.HttpContext, e);
            if (retryAfter is { } wait)
            {
                context.HttpContext.Response.Headers.RetryAfter = Math.Max(1, (int)Math.Ceiling(wait.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
            }

            return problem;
        }
    }
}
