using System.Collections.Concurrent;
using System.Data.Common;
using System.Text.Json;
using System.Threading.Channels;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Resources;
using CvrlServe.Core;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Library;

/// <summary>What an ingest job needs to run, again after a restart if need be. Server-side only: never shown to clients.</summary>
public sealed record IngestPayload(string Sha256, long Bytes, string Model, string Name, IReadOnlyList<string> Tags, string? Webhook);

/// <summary>
/// Long videos into the library in the background: an upload above <see cref="LibraryOptions.JobAboveSeconds"/>
/// (or one that asks) is moved to DATA/library-jobs/{job id} and becomes a <see cref="JobStore"/> job with a
/// payload. Jobs survive restarts: each replica heartbeats the jobs it holds, and a job whose heartbeat
/// lapsed (its process died) is taken over (<see cref="JobStore.ClaimAsync"/>) by a replica that can see its
/// file and run again from the start; one whose file is gone is marked failed. A finished job may call a
/// webhook (<see cref="WebhookSender"/>: signed, allowlisted hosts, no private addresses).
/// </summary>
public sealed partial class IngestJobs(
    JobStore jobs, LibraryIngest ingest, ModelRegistryService models, WebhookSender webhooks, IOptions<CvrlServeOptions> options, ILogger<IngestJobs> logger)
    : BackgroundService
{
    public const string Kind = "video-ingest";

    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _deliveries = new();
    private readonly Channel<string> _queue = Channel.CreateBounded<string>(new BoundedChannelOptions(options.Value.Library.QueuedJobs) { FullMode = BoundedChannelFullMode.Wait });

    /// <summary>Where a job's video waits until its job ends.</summary>
    public string Folder { get; } = Path.Combine(options.Value.FullDataFolder, "library-jobs");

    private TimeSpan Lease => TimeSpan.FromSeconds(options.Value.JobLeaseSeconds);

    /// <summary>
    /// Makes a job of an upload: its file moves into <see cref="Folder"/> and the job is queued here. Throws
    /// <see cref="OverloadedException"/> when the queue is full (the job is then recorded failed and its file removed).
    /// </summary>
    public async Task<JobRecord> SubmitAsync(string uploadPath, IngestPayload payload, string owner, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(payload);
        Directory.CreateDirectory(Folder);
        var job = await jobs.CreateAsync(Kind, owner, cancellationToken, JsonSerializer.Serialize(payload, JsonSerializerOptions.Web));
        string file = FileOf(job.Id);
        try
        {
            // The same volume as the data folder, or a copy when uploads live elsewhere (a pod's own disk).
            File.Move(uploadPath, file);
        }
        catch
        {
            await FailAsync(job.Id, new JobError(Problems.TypePrefix + "internal", "Internal error", "The upload could not be kept for the job."));
            TryDelete(file);
            throw;
        }

        _held.TryAdd(job.Id, 0);
        if (!_queue.Writer.TryWrite(job.Id))
        {
            _held.TryRemove(job.Id, out _);
            await FailAsync(job.Id, new JobError(Problems.TypePrefix + "overloaded", "Service busy", "Too many videos are waiting to be stored."));
            TryDelete(file);
            throw new OverloadedException("too many ingest jobs are queued", TimeSpan.FromSeconds(30));
        }

        return (await jobs.GetAsync(job.Id, cancellationToken))!;
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(Folder);
        await TakeOverStaleAsync(cancellationToken);
        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        // Jobs held here stay queued or running: their files stay, their heartbeats stop, and after a lease
        // this replica (restarted) or another takes them over and runs them again. Webhook deliveries under way
        // get until the host's shutdown deadline.
        await base.StopAsync(cancellationToken);
        try
        {
            await Task.WhenAll(_deliveries.Keys).WaitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            // The deadline passed: the remaining deliveries are dropped (the job records stay).
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll([.. Enumerable.Range(0, options.Value.Library.ConcurrentJobs).Select(_ => RunQueueAsync(stoppingToken)), MaintainAsync(stoppingToken)]);

    private string FileOf(string jobId) => Path.Combine(Folder, jobId + ".video");

    private async Task RunQueueAsync(CancellationToken stoppingToken)
    {
        await foreach (string id in _queue.Reader.ReadAllAsync(stoppingToken))
        {
            JobRecord? finished = null;
            IngestPayload? payload = null;
            try
            {
                payload = await ReadPayloadAsync(id, stoppingToken);
                finished = await RunAsync(id, payload, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Stopping: the job stays unfinished with its file, to be taken over after a lease.
                return;
            }
            catch (JobFinishedException)
            {
                LogTakenOver(logger, id);
            }
            catch (Exception e)
            {
                var error = JobErrors.Of(e, id);
                if (e is not CvrlException)
                {
                    LogFailed(logger, e, id);
                }

                finished = await FailAsync(id, error);
            }
            finally
            {
                _held.TryRemove(id, out _);
            }

            if (finished is not null)
            {
                TryDelete(FileOf(id));
                if (payload?.Webhook is { } hook)
                {
                    // Beside the queue: a slow or failing receiver (retries take minutes) never holds up the next video.
                    var delivery = NotifyAsync(hook, finished, stoppingToken);
                    _deliveries.TryAdd(delivery, 0);
                    _ = delivery.ContinueWith(t => _deliveries.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
                }
            }
        }
    }

    private async Task<JobRecord> RunAsync(string id, IngestPayload payload, CancellationToken cancellationToken)
    {
        await jobs.UpdateAsync(id, r => r with { State = JobState.Running, Message = "started" }, cancellationToken);
        if (!File.Exists(FileOf(id)))
        {
            throw new InvalidRequestException("The job's video is no longer on the server; upload it again.");
        }

        // A job taken over at start must not race the models' first load.
        await models.Started.WaitAsync(cancellationToken);
        using var lease = models.Registry.Acquire(payload.Model);
        var request = new IngestRequest(FileOf(id), payload.Sha256, payload.Bytes, (await jobs.GetAsync(id, cancellationToken))?.Owner ?? "anonymous", payload.Name, payload.Tags);
        var (entry, created) = await ingest.IngestAsync(request, lease.Model, null,
            (progress, message) => jobs.UpdateAsync(id, r => r with { Progress = progress, Message = message }, cancellationToken), cancellationToken);
        var result = JsonSerializer.SerializeToElement(VideoResponses.Of(entry, !created, null), JsonSerializerOptions.Web);
        return await jobs.UpdateAsync(id, r => r with { State = JobState.Succeeded, Progress = 1, Message = created ? "stored" : "already stored", Result = result }, cancellationToken);
    }

    /// <summary>Heartbeats this replica's jobs and takes over jobs whose replica died.</summary>
    private async Task MaintainAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.JobHeartbeatSeconds));
        try
        {
            while (await timer.WaitForNextTickAsync(stoppingToken))
            {
                try
                {
                    await jobs.HeartbeatAsync(_held.Keys, stoppingToken);
                    await TakeOverStaleAsync(stoppingToken);
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CvrlException or DbException)
                {
                    LogMaintenanceFailed(logger, e);
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // Stopping.
        }
    }

    /// <summary>
    /// Jobs whose heartbeat lapsed: taken over and queued here when their file is visible, else marked failed
    /// (interrupted) once the lease has passed twice, so a replica that can see the file has had its chance.
    /// </summary>
    private async Task TakeOverStaleAsync(CancellationToken cancellationToken)
    {
        foreach (var stale in await jobs.StaleAsync(Kind, Lease, cancellationToken))
        {
            if (File.Exists(FileOf(stale.Id)))
            {
                if (await jobs.ClaimAsync(stale.Id, Lease, "taken over after the replica running it stopped; starting again", cancellationToken) is not null)
                {
                    _held.TryAdd(stale.Id, 0);
                    if (!_queue.Writer.TryWrite(stale.Id))
                    {
                        _held.TryRemove(stale.Id, out _);
                        await FailAsync(stale.Id, new JobError(JobErrors.Interrupted, "Interrupted", "The service restarted and could not queue the job again; submit it again."));
                        TryDelete(FileOf(stale.Id));
                    }
                    else
                    {
                        LogResumed(logger, stale.Id);
                    }
                }
            }
        }

        await jobs.RecoverAsync(2 * Lease, cancellationToken, Kind);
    }

    private async Task<IngestPayload> ReadPayloadAsync(string id, CancellationToken cancellationToken) =>
        JsonSerializer.Deserialize<IngestPayload>(await jobs.PayloadAsync(id, cancellationToken) ?? "null", JsonSerializerOptions.Web)
        ?? throw new InvalidOperationException($"Job {id} has no payload.");

    private async Task<JobRecord?> FailAsync(string id, JobError error)
    {
        try
        {
            return await jobs.UpdateAsync(id, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, CancellationToken.None);
        }
        catch (JobFinishedException)
        {
            LogTakenOver(logger, id);
        }
        catch (Exception e) when (e is CvrlException or IOException or DbException)
        {
            // The record cannot be written now: its heartbeat lapses and a replica takes it over.
            LogMaintenanceFailed(logger, e);
        }

        return null;
    }

    private async Task NotifyAsync(string hook, JobRecord job, CancellationToken cancellationToken)
    {
        try
        {
            var delivery = await webhooks.DeliverAsync(new Uri(hook), job.Id, JsonSerializer.SerializeToUtf8Bytes(job, JsonSerializerOptions.Web), cancellationToken);
            LogWebhook(logger, job.Id, delivery.Delivered, delivery.Attempts, delivery.LastStatus);
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            // Stopping.
        }
        catch (Exception e) when (e is UriFormatException or ArgumentException or InvalidOperationException)
        {
            LogWebhookFailed(logger, e, job.Id);
        }
    }

    private static void TryDelete(string path)
    {
        try
        {
            File.Delete(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // Left for the next start's sweep.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Ingest job {JobId} taken over from a stopped replica and queued again")]
    private static partial void LogResumed(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ingest job {JobId} was finished elsewhere (its heartbeat lapsed); dropped here")]
    private static partial void LogTakenOver(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Ingest job upkeep failed; retried at the next heartbeat")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Ingest job {JobId} failed")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook for job {JobId} could not be sent")]
    private static partial void LogWebhookFailed(ILogger logger, Exception exception, string jobId);

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook for job {JobId}: delivered {Delivered} after {Attempts} attempt(s), last status {Status}")]
    private static partial void LogWebhook(ILogger logger, string jobId, bool delivered, int attempts, int? status);
}
