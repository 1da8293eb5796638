using System.Diagnostics;
using CvrlServe.Core.Datasets;
using CvrlServe.Core.Video;
using CvrlServe.Training.Augment;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Data;
using CvrlServe.Training.Modules;
using TorchSharp;
using static TorchSharp.torch;

namespace CvrlServe.Training.Trainers;

/// <param name="Data">Labelled data: a folder per class, a CSV or a UCF101 split list.</param>
/// <param name="Init">A pretrained checkpoint whose encoder starts the model (fine-tuning); null trains from scratch.</param>
/// <param name="EvalData">Labelled held-out videos (same classes) scored after training; null skips it.</param>
public sealed record SupervisedRun(string Data, string Output, string CacheFolder, ExperimentConfig Config, bool Resume, TextWriter Log, string? Init = null, bool Interactive = false, long? StopAtStep = null, string? EvalData = null);

/// <param name="TrainAccuracy">Top-1 on the training videos, one centre clip each, eval mode, after training.</param>
/// <param name="Config">The resolved config it ran with (epochs turned into steps).</param>
/// <param name="EvalAccuracy">Top-1 on <see cref="SupervisedRun.EvalData"/> the same way (the classifier end to end, not a probe); null without it.</param>
public sealed record SupervisedSummary(IReadOnlyList<StepMetrics> Steps, double TrainAccuracy, IReadOnlyList<string> Classes, string LastCheckpoint, TimeSpan Elapsed, ExperimentConfig Config, double? EvalAccuracy = null);

/// <summary>
/// The supervised baseline: the same encoder and data pipeline, a linear head and cross-entropy, crop and
/// flip only. With an init checkpoint it fine-tunes a pretrained encoder. Checkpoints export like pretraining's.
/// </summary>
public static class SupervisedTrainer
{
    public static async Task<SupervisedSummary> RunAsync(SupervisedRun run, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(run);
        if (!cuda.is_available())
        {
            MemoryEstimate.Check(run.Config, run.Config.BatchSize, GC.GetGCMemoryInfo().TotalAvailableMemoryBytes);
        }

        var dataset = LabelledVideos.Load(run.Data);
        var (start, resumeFrom, saved) = RunFolder.Prepare(run.Output, run.Resume);
        var cached = await RunFolder.CacheAsync(dataset.Videos.Select(v => v.Path).ToArray(), run.CacheFolder, run.Config.Data, run.Log, cancellationToken);
        if (cached.Count != dataset.Videos.Count)
        {
            throw new ConfigException([$"{dataset.Videos.Count - cached.Count} labelled videos could not be read (listed above); fix or remove them"]);
        }

        var config = run.Config.Resolve(cached.Count);
        run.Log.WriteLine(run.Config.DescribeSchedule(config, cached.Count));
        if (saved is not null)
        {
            RunFolder.CheckSameRecipe(config, saved, resumeFrom!);
        }

        File.WriteAllText(Path.Combine(run.Output, "config.json"), config.ToJson());
        var labelled = cached.Zip(dataset.Videos, (video, item) => (video, dataset.ClassIndex(item.Label))).ToArray();
        (CachedVideo, int)[]? held = null;
        if (run.EvalData is not null)
        {
            // Read and cached before training, so a bad held-out set fails before the hours are spent.
            var evalSet = LabelledVideos.Load(run.EvalData);
            var unknown = evalSet.Classes.Except(dataset.Classes).ToArray();
            if (unknown.Length > 0)
            {
                throw new ConfigException([$"--eval has classes the training data lacks: {string.Join(", ", unknown)}"]);
            }

            var evalCached = await RunFolder.CacheAsync(evalSet.Videos.Select(v => v.Path).ToArray(), run.CacheFolder, run.Config.Data, run.Log, cancellationToken);
            if (evalCached.Count != evalSet.Videos.Count)
            {
                throw new ConfigException([$"{evalSet.Videos.Count - evalCached.Count} held-out videos could not be read (listed above)"]);
            }

            held = evalCached.Zip(evalSet.Videos, (video, item) => (video, dataset.ClassIndex(item.Label))).ToArray();
        }

        return await Task.Factory.StartNew(() => Train(run with { Config = config }, dataset.Classes, labelled, held, start, resumeFrom, cancellationToken),
            cancellationToken, TaskCreationOptions.LongRunning, TaskScheduler.Default);
    }

    /// <summary>The model to train: a fresh encoder, or one holding <paramref name="init"/>'s encoder weights.</summary>
    public static ClassifierModel BuildModel(ExperimentConfig config, int classes, string? init)
    {
        ArgumentNullException.ThrowIfNull(config);
        random.manual_seed(config.Seed);
        var encoder = new R3dEncoder(R3dArchitecture.Parse(config.Model.Architecture), config.Model.Width);
        if (init is not null)
        {
            var (pretrained, info) = EncoderCheckpoint.Load(init);
            using (pretrained)
            {
                if (!string.Equals(info.Architecture, config.Model.Architecture, StringComparison.OrdinalIgnoreCase) || info.Width != config.Model.Width)
                {
                    encoder.Dispose();
                    throw new ConfigException([$"--init holds a {info.Architecture} x{info.Width}; the config trains a {config.Model.Architecture} x{config.Model.Width}"]);
                }

                encoder.load_state_dict(pretrained.state_dict());
            }
        }

        return new ClassifierModel(encoder, classes);
    }

    private static SupervisedSummary Train(SupervisedRun run, IReadOnlyList<string> classes, (CachedVideo Video, int Label)[] labelled, (CachedVideo Video, int Label)[]? held, long start, string? resumeFrom, CancellationToken cancellationToken)
    {
        var config = run.Config;
        var device = cuda.is_available() ? CUDA : CPU;
        var clip = new ClipSpec(config.Data.Frames, config.Data.Stride);
        var batches = new SupervisedBatches(labelled, clip, new ClipAugmenter(config.Augment.CropAndFlipOnly()), config.BatchSize, config.Seed);
        using var model = BuildModel(config, classes.Count, resumeFrom is null ? run.Init : null);
        model.to(device);
        using var updater = new ParameterUpdater(model.parameters(), config.Optimizer);
        if (resumeFrom is not null)
        {
            model.Encoder.load(Path.Combine(resumeFrom, EncoderCheckpoint.EncoderFile));
            model.Fc.load(Path.Combine(resumeFrom, TrainerState.HeadFile));
            updater.Load(Path.Combine(resumeFrom, TrainerState.OptimizerFile));
        }

        var schedule = new LearningRateSchedule(config.ScaledLearningRate, config.TotalWarmupSteps, config.TotalSteps);
        using var log = new TrainingLog(Path.Combine(run.Output, "metrics.csv"), run.Log, run.Interactive, config.TotalSteps);
        string checkpoints = Path.Combine(run.Output, "checkpoints");
        string last = resumeFrom ?? "";
        long end = Math.Min(config.TotalSteps, run.StopAtStep ?? config.TotalSteps);
        model.train();
        using (var prefetcher = batches.Prefetch(start, end, config.Prefetch, cancellationToken))
        {
            for (long step = start; step < end; step++)
            {
                var batch = prefetcher.Take();
                var clock = Stopwatch.StartNew();
                double learningRate = schedule.At(step);
                double loss, accuracy;
                using (var scope = NewDisposeScope())
                {
                    var logits = model.forward(tensor(batch.Clips, batch.Shape).to(device));
                    var labels = tensor(batch.Labels).to(device);
                    var crossEntropy = nn.functional.cross_entropy(logits, labels);
                    updater.ZeroGrad();
                    crossEntropy.backward();
                    updater.Step(learningRate);
                    loss = crossEntropy.item<float>();
                    accuracy = logits.argmax(1).eq(labels).to_type(ScalarType.Float32).mean().item<float>();
                }

                log.Record(new StepMetrics(step, loss, accuracy, 0, learningRate, batch.Shape[0] / clock.Elapsed.TotalSeconds, log.Elapsed.TotalSeconds), "supervised");
                if ((step + 1) % config.CheckpointEvery == 0 || step + 1 == end)
                {
                    last = RunFolder.SaveCheckpoint(checkpoints, step + 1, model.Encoder, model.Fc, updater, config, run.Data, "supervised");
                }
            }
        }

        log.SaveCurves(Path.Combine(run.Output, "curves.png"), "cross-entropy", "batch accuracy",
            $"{config.Name} (supervised): {config.Model.Architecture} x{config.Model.Width}, {classes.Count} classes");

        double trainAccuracy = Evaluate(model, labelled, clip, config.Data.CropSize, device);
        run.Log.WriteLine($"Training-set accuracy (centre clip, eval mode): {trainAccuracy:P1} over {labelled.Length} videos, {classes.Count} classes.");
        double? evalAccuracy = null;
        if (held is not null)
        {
            evalAccuracy = Evaluate(model, held, clip, config.Data.CropSize, device);
            run.Log.WriteLine($"Held-out accuracy (centre clip, eval mode): {evalAccuracy:P1} over {held.Length} videos.");
        }

        return new SupervisedSummary(log.Steps, trainAccuracy, classes, last, log.Elapsed, config, evalAccuracy);
    }

    private static double Evaluate(ClassifierModel model, (CachedVideo Video, int Label)[] labelled, ClipSpec clip, int cropSize, Device device)
    {
        model.eval();
        using var noGrad = no_grad();
        int correct = 0;
        foreach (var (video, label) in labelled)
        {
            using var scope = NewDisposeScope();
            int offset = ClipSampler.EvaluationOffsets(video.Frames, clip, 3)[1];
            var frames = video.ReadFrames(ClipSampler.Indices(offset, clip, video.Frames));
            var input = ClipAugmenter.CenterCrop(frames, clip.Frames, video.Height, video.Width, cropSize).unsqueeze(0).to(device);
            correct += model.forward(input).argmax(1).item<long>() == label ? 1 : 0;
        }

        return (double)correct / labelled.Length;
    }
}
