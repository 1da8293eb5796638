using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Core.Datasets;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Training.Augment;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Data;
using CvrlServe.Training.Losses;
using CvrlServe.Training.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace CvrlServe.Training.Trainers;

/// <summary>Where a pretraining run reads and writes, and how it reports.</summary>
/// <param name="Data">Folder of unlabeled videos (searched recursively), or a labelled list whose labels are ignored.</param>
/// <param name="Output">Run folder: config.json, metrics.csv, curves.png, checkpoints/step-N.</param>
/// <param name="CacheFolder">Where decoded training frames are kept between runs.</param>
/// <param name="Resume">Continue from the run folder's newest checkpoint.</param>
/// <param name="StopAtStep">Stop (with a checkpoint) after this many steps of the schedule; resume later.</param>
public sealed record PretrainRun(string Data, string Output, string CacheFolder, ExperimentConfig Config, bool Resume, TextWriter Log, bool Interactive = false, long? StopAtStep = null);

/// <summary>What a run did, for the command's summary and for tests.</summary>
/// <param name="Config">The resolved config it ran with (epochs turned into steps).</param>
public sealed record PretrainSummary(IReadOnlyList<StepMetrics> Steps, IReadOnlyList<long> LiveTensors, string LastCheckpoint, int Videos, TimeSpan Elapsed, ExperimentConfig Config);

/// <summary>CVRL self-supervised pretraining (cvrl-method.md §3–6) on one device.</summary>
public static class Pretrainer
{
    public static async Task<PretrainSummary> RunAsync(PretrainRun run, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        var device = cuda.is_available() ? CUDA : CPU;
        if (device.type == DeviceType.CPU)
        {
            long needed = MemoryEstimate.Check(run.Config, 2 * run.Config.BatchSize, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
            run.Log.WriteLine($"Device CPU; estimated memory per step {needed / 1e9:F2} GB.");
        }

        var (start, resumeFrom, saved) = RunFolder.Prepare(run.Output, run.Resume);
        // A folder of videos, or a labelled list (CSV or split list) whose labels pretraining ignores:
        // a benchmark's train split is named by its list, beside a test split pretraining must not see.
        var files = Directory.Exists(run.Data) ? VideoFiles.Find(run.Data) : LabelledVideos.Load(run.Data).Videos.Select(v => v.Path).ToArray();
        var videos = await RunFolder.CacheAsync(files, run.CacheFolder, run.Config.Data, run.Log, cancellationToken);
        if (videos.Count < 2)
        {
            throw new ConfigException([$"'{run.Data}' has {videos.Count} usable videos; contrastive pretraining needs at least 2"]);
        }

        var config = run.Config.Resolve(videos.Count);
        run.Log.WriteLine(run.Config.DescribeSchedule(config, videos.Count));
        if (saved is not null)
        {
            RunFolder.CheckSameRecipe(config, saved, resumeFrom!);
        }

        File.WriteAllText(Path.Combine(run.Output, "config.json"), config.ToJson());
        run = run with { Config = config };
        var clip = new ClipSpec(config.Data.Frames, config.Data.Stride);
        var batches = new PretrainBatches(videos, clip, config.Data.Interval, new ClipAugmenter(config.Augment), config.BatchSize, config.Seed);

        // The loop runs on one dedicated thread: TorchSharp's dispose scopes and statistics are per thread.
        return await Task.Factory.StartNew(() => Train(run, start, resumeFrom, videos, batches, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    private static PretrainSummary Train(PretrainRun run, long start, string? resumeFrom, IReadOnlyList<CachedVideo> videos, PretrainBatches batches, CancellationToken cancellationToken)
    {
        var config = run.Config;
        var device = cuda.is_available() ? CUDA : CPU;
        string checkpoints = Path.Combine(run.Output, "checkpoints");
        random.manual_seed(config.Seed);
        var architecture = R3dArchitecture.Parse(config.Model.Architecture);
        var encoder = new R3dEncoder(architecture, config.Model.Width);
        using var model = new ContrastiveModel(encoder, new ProjectionHead(encoder.EmbeddingSize, config.Model.HeadLayers, config.Model.HeadHiddenSize, config.Model.ProjectionSize));
        model.to(device);
        using var updater = new ParameterUpdater(model.parameters(), config.Optimizer);
        if (resumeFrom is not null)
        {
            model.Encoder.load(Path.Combine(resumeFrom, EncoderCheckpoint.EncoderFile));
            model.Head.load(Path.Combine(resumeFrom, TrainerState.HeadFile));
            updater.Load(Path.Combine(resumeFrom, TrainerState.OptimizerFile));
            run.Log.WriteLine($"Resuming from {resumeFrom} at step {start}.");
        }

        var schedule = new LearningRateSchedule(config.ScaledLearningRate, config.TotalWarmupSteps, config.TotalSteps);
        using var log = new TrainingLog(Path.Combine(run.Output, "metrics.csv"), run.Log, run.Interactive, config.TotalSteps);
        var live = new List<long>();
        string last = resumeFrom ?? "";
        model.train();
        long end = Math.Min(config.TotalSteps, run.StopAtStep ?? config.TotalSteps);
        using var prefetcher = batches.Prefetch(start, end, config.Prefetch, cancellationToken);
        for (long step = start; step < end; step++)
        {
            var batch = prefetcher.Take();
            var clock = Stopwatch.StartNew();
            double learningRate = schedule.At(step);
            ContrastiveResult result;
            double loss;
            using (var scope = NewDisposeScope())
            {
                var projections = model.forward(batch.ToTensor(device));
                result = ContrastiveLoss.Compute(projections, config.Temperature);
                updater.ZeroGrad();
                result.Loss.backward();
                updater.Step(learningRate);
                loss = result.Loss.item<float>();
            }

            live.Add(DisposeScopeManager.Statistics.ThreadTotalLiveCount);
            log.Record(new StepMetrics(step, loss, result.Accuracy, result.Entropy, learningRate, batch.Shape[0] / clock.Elapsed.TotalSeconds, log.Elapsed.TotalSeconds), "pretrain");
            if ((step + 1) % config.CheckpointEvery == 0 || step + 1 == end)
            {
                last = RunFolder.SaveCheckpoint(checkpoints, step + 1, model.Encoder, model.Head, updater, config, run.Data, "pretrained");
            }
        }

        log.SaveCurves(Path.Combine(run.Output, "curves.png"), "contrastive loss", "contrastive accuracy",
            $"{config.Name}: {config.Model.Architecture} x{config.Model.Width}, batch {config.BatchSize}");

        return new PretrainSummary(log.Steps, live, last, videos.Count, log.Elapsed, config);
    }
}

/// <summary>trainer.json in a checkpoint: where training stood and the resolved config it ran with.</summary>
/// <param name="InflatedFrom">
/// Set by <c>cvrl inflate</c>: the single-frame checkpoint this one was inflated from; its config is that
/// checkpoint's with the video clip's frames and stride.
/// </param>
public sealed record TrainerState(long Step, int Steps, string ConfigSha256, ExperimentConfig Config, string? InflatedFrom = null)
{
    public const string FileName = "trainer.json";
    public const string HeadFile = "head.bin";
    public const string OptimizerFile = "optimizer.bin";

    /// <summary>The trainer state of <paramref name="checkpoint"/>, its config read as the code that wrote it meant it (<see cref="ExperimentConfig.UpgradeSaved"/>).</summary>
    public static TrainerState Read(string checkpoint)
    {
        string path = Path.Combine(checkpoint, FileName);
        try
        {
            var node = JsonNode.Parse(File.ReadAllText(path)) ?? throw new InvalidDataException($"{path} is empty.");
            if (node["config"] is JsonObject config)
            {
                ExperimentConfig.UpgradeSaved(config);
            }

            return node.Deserialize<TrainerState>(EncoderManifest.Json) ?? throw new InvalidDataException($"{path} is empty.");
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid trainer state: {e.Message}", e);
        }
    }
}
