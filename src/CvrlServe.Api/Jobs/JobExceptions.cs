using CvrlServe.Core;

namespace CvrlServe.Api.Jobs;

/// <summary>No job has the id asked for (or the id is not one this service could have issued).</summary>
public sealed class JobNotFoundException(string? detail = null)
    : CvrlException(ErrorKind.NotFound, "No job with that id exists (finished jobs are kept for a limited time).", detail);

/// <summary>
/// A change was asked of a job that already succeeded or failed; finished jobs are final. Not a
/// <see cref="CvrlException"/> because it is a conflict between the service's own writers (a cancel racing
/// the job's completion), not something wrong with a request: an endpoint maps it to 409.
/// </summary>
public sealed class JobFinishedException(JobRecord job)
    : InvalidOperationException($"The job has already {(job.State == JobState.Succeeded ? "succeeded" : "failed")} and can no longer change.")
{
    /// <summary>The job as it stands, unchanged.</summary>
    public JobRecord Job { get; } = job;
}
