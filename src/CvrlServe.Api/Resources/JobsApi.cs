using System.Security.Claims;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Jobs;
using Microsoft.AspNetCore.Http.HttpResults;

namespace CvrlServe.Api.Resources;

/// <summary>A page of jobs, newest first.</summary>
public sealed record JobsResponse(IReadOnlyList<JobRecord> Jobs);

/// <summary>
/// <c>GET /v1/jobs/{id}</c> and <c>GET /v1/jobs</c>: background work (probe training from archives, long-video ingest into the library).
/// A job is visible to the key that started it and to admin keys.
/// </summary>
public static class JobsApi
{
    public static RouteGroupBuilder MapJobsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapGet("/jobs/{id}", GetAsync).WithName("GetJob").WithTags("Jobs")
            .WithSummary("A background job's state and progress")
            .WithDescription("State (queued, running, succeeded, failed), progress from 0 to 1, a message, the result when it succeeded, a problem when it failed. Any replica answers for any job. A job whose service process stopped is marked failed (urn:cvrlserve:problem:interrupted): at once when the process stops gracefully, else by any replica once its heartbeat is older than the lease (Cvrl:JobLeaseSeconds).")
            .ProducesProblem(StatusCodes.Status404NotFound);
        v1.MapGet("/jobs", ListAsync).WithName("ListJobs").WithTags("Jobs")
            .WithSummary("Recent jobs visible to this key, newest first");
        return v1;
    }

    /// <summary>Who owns what a request starts: the key's identity, or "anonymous".</summary>
    internal static string Owner(ClaimsPrincipal user) => user.Identity?.IsAuthenticated == true ? user.Identity.Name! : "anonymous";

    private static async Task<Results<Ok<JobRecord>, ProblemHttpResult>> GetAsync(string id, JobStore jobs, ClaimsPrincipal user, CancellationToken cancellationToken)
    {
        var job = await jobs.GetAsync(id, cancellationToken);
        // Someone else's job is answered exactly like a missing one: ids are not a way to learn what others run.
        return job is not null && Visible(job, user) ? TypedResults.Ok(job) : Problems.NotFound($"No job '{(id.Length > 40 ? id[..40] + "…" : id)}'.");
    }

    private static async Task<Ok<JobsResponse>> ListAsync(JobStore jobs, ClaimsPrincipal user, CancellationToken cancellationToken) =>
        TypedResults.Ok(new JobsResponse(await jobs.ListAsync(100, cancellationToken, user.IsInRole("admin") ? null : Owner(user))));

    private static bool Visible(JobRecord job, ClaimsPrincipal user) => user.IsInRole("admin") || job.Owner == Owner(user);
}
