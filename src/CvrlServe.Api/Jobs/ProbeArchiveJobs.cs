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
/// The archive and its extracted videos are deleted when the job ends, whatever the outcome. At start,
/// jobs a previous process left unfinished are marked failed and its leftovers are removed.
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

    /// <summary>Where archives and their extracted videos live while a job runs.</summary>
    public string WorkFolder { get; } = Path.Combine(options.Value.FullDataFolder, "job-work");

    /// <summary>Queues a job; false when the queue is full (the caller answers 503).</summary>
    public bool TryEnqueue(ProbeArchiveJob job) => _queue.Writer.TryWrite(job);

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        if (Directory.Exists(WorkFolder))
        {
            Directory.Delete(WorkFolder, recursive: true);
        }

        Directory.CreateDirectory(WorkFolder);
        int interrupted = await jobs.RecoverAsync(cancellationToken);
        jobs.DeleteOlderThan(Retention);
        if (interrupted > 0)
        {
            LogRecovered(logger, interrupted);
        }

        await base.StartAsync(cancellationToken);
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
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
                // Shutting down: the next start marks the job failed (interrupted).
                return;
            }
            catch (Exception e)
            {
                var error = e switch
                {
                    CvrlException c => Problem(Problems.From(c).Problem),
                    _ => new JobError("urn:cvrlserve:problem:internal", "Internal error", $"The job failed inside the service (job {job.JobId})."),
                };
                if (e is not CvrlException)
                {
                    LogFailed(logger, e, job.JobId);
                }

                await jobs.UpdateAsync(job.JobId, r => r with { State = JobState.Failed, Error = error, Message = error.Detail }, CancellationToken.None);
            }
            finally
            {
                jobs.DeleteOlderThan(Retention);
                File.Delete(job.Archive);
                if (Directory.Exists(extracted))
                {
                    Directory.Delete(extracted, recursive: true);
                }
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

    private static JobError Problem(Microsoft.AspNetCore.Http.HttpResults.ProblemHttpResult problem) =>
        new(problem.ProblemDetails.Type ?? "urn:cvrlserve:problem:error", problem.ProblemDetails.Title ?? "Error", problem.ProblemDetails.Detail ?? "");

    [LoggerMessage(Level = LogLevel.Warning, Message = "{Count} jobs were unfinished when the service stopped; marked failed")]
    private static partial void LogRecovered(ILogger logger, int count);

    [LoggerMessage(Level = LogLevel.Error, Message = "Job {JobId} failed")]
    private static partial void LogFailed(ILogger logger, Exception exception, string jobId);
}
