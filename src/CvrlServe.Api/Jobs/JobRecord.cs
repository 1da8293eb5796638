using System.Text.Json;
using System.Text.Json.Serialization;

namespace CvrlServe.Api.Jobs;

/// <summary>Where a background job stands. <see cref="Succeeded"/> and <see cref="Failed"/> are final.</summary>
[JsonConverter(typeof(JsonStringEnumConverter<JobState>))]
public enum JobState
{
    [JsonStringEnumMemberName("queued")]
    Queued,

    [JsonStringEnumMemberName("running")]
    Running,

    [JsonStringEnumMemberName("succeeded")]
    Succeeded,

    [JsonStringEnumMemberName("failed")]
    Failed,
}

/// <summary>
/// Why a job failed, shaped like problem+json so a client handles it as it handles a failed request.
/// <see cref="Type"/> is a stable URN (for example <see cref="JobErrors.Interrupted"/>); <see cref="Detail"/>
/// is client-safe: no server path, no tool output.
/// </summary>
public sealed record JobError(string Type, string Title, string Detail);

/// <summary>The error types the job machinery itself assigns.</summary>
public static class JobErrors
{
    /// <summary>The service process holding the job stopped (crash, deploy, restart) while the job was queued or running.</summary>
    public const string Interrupted = "urn:cvrlserve:problem:interrupted";

    /// <summary>
    /// The job error for an exception that ended job <paramref name="jobId"/>: a Core error as the problem a
    /// request would have got; anything else as an internal error that names the job, never the exception.
    /// </summary>
    public static JobError Of(Exception error, string jobId)
    {
        if (error is CvrlServe.Core.CvrlException known)
        {
            var problem = Hosting.Problems.From(known).Problem.ProblemDetails;
            return new JobError(problem.Type ?? Hosting.Problems.TypePrefix + "error", problem.Title ?? "Error", problem.Detail ?? "");
        }

        return new JobError(Hosting.Problems.TypePrefix + "internal", "Internal error", $"The job failed inside the service (job {jobId}).");
    }
}

/// <summary>
/// One background job as recorded on disk. <see cref="Progress"/> runs from 0 to 1; <see cref="Result"/> is
/// set when the job succeeded and <see cref="Error"/> when it failed. <see cref="Owner"/> is whoever submitted
/// it (an API key's name), so a listing can be limited to the caller's own jobs. <see cref="Instance"/> is
/// the service process (a random id per start) that accepted the job and runs it; while the job is queued
/// or running that process re-stamps <see cref="HeartbeatUtc"/>, and a job whose stamp grows older than the
/// lease is marked failed (interrupted) by whichever replica notices. Records written before these two
/// fields existed have neither; their <see cref="UpdatedUtc"/> stands in for the heartbeat.
/// </summary>
public sealed record JobRecord(
    string Id,
    string Kind,
    JobState State,
    double Progress,
    string? Message,
    DateTimeOffset CreatedUtc,
    DateTimeOffset UpdatedUtc,
    string? Owner,
    JsonElement? Result,
    JobError? Error,
    string? Instance = null,
    DateTimeOffset? HeartbeatUtc = null)
{
    /// <summary>True once the job succeeded or failed; a finished job never changes again.</summary>
    [JsonIgnore]
    public bool IsFinished => State is JobState.Succeeded or JobState.Failed;

    /// <summary>The last sign of life of the process that holds the job.</summary>
    [JsonIgnore]
    public DateTimeOffset LastSeenUtc => HeartbeatUtc ?? UpdatedUtc;
}
