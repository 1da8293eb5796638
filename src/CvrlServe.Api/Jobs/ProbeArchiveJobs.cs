using System.Collections.Concurrent;
using System.Text.Json;
using System.Threading.Channels;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Resources;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Jobs;

/// <summary>A queued request to train a probe from an uploaded archive (class folders of videos).</summary>
public sealed record ProbeArchiveJob(string JobId, string Archive, string Model, string Probe, int ClipsPerVideo);

/// <summary>
/// Trains probes from uploaded archives in the background, one job at a time: safe extraction, the
/// evaluation protocol's training features per video (random resized crops and flips, seeded), the L2 sweep
/// over held-out videos, then a save in the data folder. Progress is recorded per video in the
/// <see cref="JobStore"/>; a job that fails records a problem (type, title, detail), never server paths.
/// The archive and its extracted videos are deleted when the job ends, whatever the outcome.
/// <para>
/// Replicas may share the data folder. The queue is this process's own: a job runs in the replica that
/// accepted it, which re-stamps the heartbeat of every job it holds (queued or running) every
/// <see cref="CvrlServeOptions.JobHeartbeatSeconds"/>. At start and after every heartbeat each replica marks
/// failed (interrupted) the jobs whose heartbeat is older than <see cref="CvrlServeOptions.JobLeaseSeconds"/>
/// (their replica died) and removes work files of jobs that are finished or unknown, never those of a
/// live job. A replica that stops gracefully marks its own unfinished jobs interrupted at once.
/// </para>
/// </summary>
public sealed partial class ProbeArchiveJobs(
    JobStore jobs, ModelRegistryService models, ProbeCatalog probes, CvrlServe.Core.Video.VideoReader reader, IOptions<CvrlServeOptions> options, ILogger<ProbeArchiveJobs> logger)
    : BackgroundService
{
    public const string Kind = "probe-archive";
    private const int QueueCapacity = 16;
    private const int BusyRetries = 150; // ~5 minutes of a busy service per video before the job gives up
    private static readonly TimeSpan Retention = TimeSpan.FromDays(7);
    private readonly Channel<ProbeArchiveJob> _queue = Channel.CreateBounded<ProbeArchiveJob>(new BoundedChannelOptions(QueueCapacity) { FullMode = BoundedChannelFullMode.Wait });

    // Jobs this process accepted and has not finished (queued or running): the ones it heartbeats.
    private readonly ConcurrentDictionary<string, byte> _held = new(StringComparer.Ordinal);

    /// <summary>Where archives and their extracted videos live while a job runs.</summary>
    public string WorkFolder { get; } = Path.Combine(options.Value.FullDataFolder, "job-work");

    private TimeSpan Lease => TimeSpan.FromSeconds(options.Value.JobLeaseSeconds);

    /// <summary>Starts heartbeating a job this process accepted, before its archive is in place.</summary>
    public void Hold(string jobId) => _held.TryAdd(jobId, 0);

    /// <summary>Stops heartbeating a job that will not be queued.</summary>
    public void Release(string jobId) => _held.TryRemove(jobId, out _);

    /// <summary>Queues a job (heartbeated from now on, if not already); false when the queue is full (the caller answers 503).</summary>
    public bool TryEnqueue(ProbeArchiveJob job)
    {
        ArgumentNullException.ThrowIfNull(job);
        _held.TryAdd(job.JobId, 0);
        if (_queue.Writer.TryWrite(job))
        {
            return true;
        }

        _held.TryRemove(job.JobId, out _);
        return false;
    }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        Directory.CreateDirectory(WorkFolder);
        LogInstance(logger, jobs.Instance, Environment.MachineName);
        // Probe saves and job updates rely on file locks across replicas: say so when the volume cannot give them.
        if (CvrlServe.Core.Storage.VolumeLocking.Warning(options.Value.FullDataFolder) is { } locking)
        {
            LogLocking(logger, locking);
        }

        int interrupted = await jobs.RecoverAsync(Lease, cancellationToken, Kind);
        await jobs.DeleteOlderThanAsync(Retention, cancellationToken);
        await DeleteAbandonedWorkAsync(cancellationToken);
        if (interrupted > 0)
        {
            LogRecovered(logger, interrupted);
        }

        await base.StartAsync(cancellationToken);
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        // This process's queue goes with it: say so now rather than a lease later.
        var error = new JobError(JobErrors.Interrupted, "Interrupted", "The service process running the job stopped before the job finished; submit it again.");
        foreach (string id in _held.Keys)
        {
            try
            {
                await jobs.UpdateAsync(id, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, cancellationToken);
            }
            catch (Exception e) when (e is JobFinishedException or IOException or OperationCanceledException or CvrlException or System.Data.Common.DbException)
            {
                // Finished meanwhile, or the store cannot be written now: the lease catches it.
            }
        }
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.WhenAll(RunQueueAsync(stoppingToken), MaintainAsync(stoppingToken));

    private async Task RunQueueAsync(CancellationToken stoppingToken)
    {
        await foreach (var job in _queue.Reader.ReadAllAsync(stoppingToken))
        {
            string extracted = Path.Combine(WorkFolder, job.JobId);
            try
            {
                await RunAsync(job, extracted, stoppingToken);
            }
            catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
            {
                // Shutting down: StopAsync marks the job failed (interrupted).
                return;
            }
            catch (JobFinishedException)
            {
                // Another replica marked it interrupted: this process missed its heartbeats for a whole lease.
                LogTakenOver(logger, job.JobId);
            }
            catch (Exception e)
            {
                var error = JobErrors.Of(e, job.JobId);
                if (e is not CvrlException)
                {
                    LogFailed(logger, e, job.JobId);
                }

                try
                {
                    await jobs.UpdateAsync(job.JobId, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, CancellationToken.None);
                }
                catch (JobFinishedException)
                {
                    LogTakenOver(logger, job.JobId);
                }
                catch (Exception recording) when (recording is CvrlException or IOException or UnauthorizedAccessException or System.Data.Common.DbException)
                {
                    // The record cannot be written now: the queue goes on, and the lapsed heartbeat marks the job
                    // interrupted. Ending the queue here would stop every later job and the host with it.
                    LogMaintenanceFailed(logger, recording);
                }
            }
            finally
            {
                _held.TryRemove(job.JobId, out _);
                await CleanUpAsync(job, extracted);
            }
        }
    }

    /// <summary>
    /// After a job: its files and expired records go. A failure here (a volume hiccup) must not end the queue,
    /// which would stop every later job and the host with it: it is logged, and the leftovers are removed by
    /// a later <see cref="DeleteAbandonedWorkAsync"/>.
    /// </summary>
    private async Task CleanUpAsync(ProbeArchiveJob job, string extracted)
    {
        try
        {
            await jobs.DeleteOlderThanAsync(Retention, CancellationToken.None);
            File.Delete(job.Archive);
            if (Directory.Exists(extracted))
            {
                Directory.Delete(extracted, recursive: true);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or CvrlException or System.Data.Common.DbException)
        {
            LogMaintenanceFailed(logger, e);
        }
    }

    /// <summary>Every heartbeat: stamp this process's jobs, then fail the jobs of replicas that died (and drop their work files).</summary>
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
                    if (await jobs.RecoverAsync(Lease, stoppingToken, Kind) > 0)
                    {
                        await DeleteAbandonedWorkAsync(stoppingToken);
                    }
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException or CvrlException or System.Data.Common.DbException)
                {
                    // A volume hiccup or a lock held too long: the next tick tries again, well within the lease.
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
    /// Removes archives and extracted folders in <see cref="WorkFolder"/> whose job is finished or unknown.
    /// A live job's (this replica's or another's) always has an unfinished record: its record is written
    /// before its archive arrives here.
    /// </summary>
    private async Task DeleteAbandonedWorkAsync(CancellationToken cancellationToken)
    {
        foreach (string entry in Directory.EnumerateFileSystemEntries(WorkFolder))
        {
            string name = Path.GetFileName(entry);
            string id = name.EndsWith(".zip", StringComparison.Ordinal) ? name[..^4] : name;
            var record = JobStore.IsValidId(id) ? await jobs.GetAsync(id, cancellationToken) : null;
            if (record is { IsFinished: false })
            {
                // A live job's, this replica's or another's.
                continue;
            }

            try
            {
                if (Directory.Exists(entry))
                {
                    Directory.Delete(entry, recursive: true);
                }
                else
                {
                    File.Delete(entry);
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // Another replica is removing it too.
            }
        }
    }

    private async Task RunAsync(ProbeArchiveJob job, string extracted, CancellationToken cancellationToken)
    {
        await jobs.UpdateAsync(job.JobId, r => r with { State = JobState.Running, Message = "extracting the archive" }, cancellationToken);
        var o = options.Value;
        var videos = await ArchiveExtractor.ExtractAsync(job.Archive, extracted, new ArchiveLimits(o.MaxArchiveExpandedBytes, o.MaxArchiveEntries), cancellationToken);
        File.Delete(job.Archive);

        using var lease = models.Registry.Acquire(job.Model);
        var model = lease.Model;
        var featureOptions = new ProbeFeatureOptions { ClipsPerVideo = job.ClipsPerVideo };
        var features = new ProbeFeatures(new VideoEmbedder(reader), cacheFolder: null);
        var examples = new List<(float[] Features, string Label, string Group)>();
        var skipped = new List<string>();
        for (int i = 0; i < videos.Count; i++)
        {
            var video = videos[i];
            try
            {
                foreach (var clip in await WhenNotBusyAsync(() => features.TrainingAsync(model, video.Path, featureOptions, cancellationToken), cancellationToken))
                {
                    examples.Add((clip, video.Label, video.Path));
                }
            }
            catch (CvrlException e) when (e.Kind is ErrorKind.UnsupportedMedia or ErrorKind.Corrupt or ErrorKind.LimitExceeded)
            {
                // One bad video does not sink the job: it is named in the result.
                skipped.Add($"{video.OriginalName}: {e.Message}");
            }

            double progress = 0.9 * (i + 1) / videos.Count;
            await jobs.UpdateAsync(job.JobId, r => r with { Progress = progress, Message = $"embedded {i + 1} of {videos.Count} videos" }, cancellationToken);
        }

        if (examples.Select(e => e.Label).Distinct(StringComparer.Ordinal).Count() < 2)
        {
            throw new InvalidRequestException($"Fewer than two classes have a readable video ({skipped.Count} of {videos.Count} videos could not be read).");
        }

        await jobs.UpdateAsync(job.JobId, r => r with { Message = "fitting the probe" }, cancellationToken);
        var trainingOptions = new ProbeTrainingOptions();
        var (probe, l2, sweep) = await Task.Run(() => ProbeTraining.Fit(examples, trainingOptions), cancellationToken);
        var metrics = ProbeEvaluation.Evaluate(probe.Classes, examples.Select(e => (e.Label, probe.Predict(e.Features))).ToArray());
        var metadata = new ProbeMetadata
        {
            Name = job.Probe,
            Encoder = model.Name,
            ModelId = model.Manifest.ModelId,
            EmbeddingSize = model.Manifest.Output.Dimension,
            Classes = probe.Classes,
            Trainer = trainingOptions.Trainer,
            L2 = l2,
            Sweep = sweep,
            View = model.Manifest.View,
            Features = featureOptions,
            TrainingExamples = examples.Count,
            TrainingMetrics = metrics,
        };
        await probes.DataStore(model.Name).SaveAsync(metadata, probe, cancellationToken);
        var result = JsonSerializer.SerializeToElement(new
        {
            probe = ModelsApi.Summary(metadata, model.Name, readOnly: false),
            l2,
            sweep,
            videos = videos.Count,
            skipped,
        }, EncoderManifest.Json);
        await jobs.UpdateAsync(job.JobId, r => r with { State = JobState.Succeeded, Progress = 1, Message = $"probe '{job.Probe}' saved", Result = result }, cancellationToken);
    }

    /// <summary>
    /// Runs <paramref name="work"/>, waiting and trying again while the service is busy with requests (the
    /// memory budget or the batcher queue full): a job yields to traffic rather than failing because of it.
    /// </summary>
    private static async Task<T> WhenNotBusyAsync<T>(Func<Task<T>> work, CancellationToken cancellationToken)
    {
        for (int attempt = 0; ; attempt++)
        {
            try
            {
                return await work();
            }
            catch (CvrlException e) when (attempt < BusyRetries && (e is OverloadedException || e is LimitExceededException { Limit: Limit.QueuedBytes }))
            {
                var wait = e is OverloadedException overloaded ? overloaded.RetryAfter : TimeSpan.FromSeconds(2);
                await Task.Delay(wait, cancellationToken);
            }
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} jobs whose process stopped were marked failed (interrupted)")]
    private static partial void LogRecovered(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Information, Message = "Jobs instance {Instance} on {Machine}")]
    private static partial void LogInstance(ILogger logger, string instance, string machine);

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Warning}")]
    private static partial void LogLocking(ILogger logger, string warning);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job {JobId} was marked failed by another replica (its heartbeat lapsed); its work here is dropped")]
    private static partial void LogTakenOver(ILogger logger, string jobId);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job heartbeat or recovery failed; retried at the next heartbeat")]
    private static partial void LogMaintenanceFailed(ILogger logger, Exception exception);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId);
}
