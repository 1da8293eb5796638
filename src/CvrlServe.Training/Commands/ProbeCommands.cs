using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;
using CvrlServe.Core;
using CvrlServe.Core.Datasets;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;
using CvrlServe.Training.Plots;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl probe train</c>, <c>cvrl probe eval</c> and <c>cvrl classify</c>.</summary>
internal static class ProbeCommands
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--cpu", "--single-frame" };
    private static readonly JsonSerializerOptions JsonLines = new(EncoderManifest.Json) { WriteIndented = false };

    public static async Task<int> TrainAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string data = args.Required("--data");
        string name = args.Required("--name");
        var trainer = Enum.TryParse<ProbeTrainer>(args.Optional("--trainer") ?? "lbfgs", ignoreCase: true, out var t) ? t : throw new UsageException("--trainer must be lbfgs or sdca.");
        var preset = Preset(args);
        var augment = (args.Optional("--augment") ?? "protocol") switch
        {
            "protocol" => ProbeAugment.Protocol,
            "none" => ProbeAugment.None,
            var other => throw new UsageException($"--augment must be protocol or none (got '{other}')."),
        };
        bool flip = (args.Optional("--flip") ?? "on") switch
        {
            "on" => true,
            "off" => false,
            var other => throw new UsageException($"--flip must be on or off (got '{other}')."),
        };
        int clips = args.Int("--clips-per-video", augment == ProbeAugment.Protocol ? 8 : 1, 1, 64);
        int? trainCrop = args.Optional("--train-crop") is null ? preset?.TrainCrop : args.Int("--train-crop", 0, 1, EncoderManifest.MaxShortSide);
        int seed = args.Int("--seed", 0, 0);
        bool singleFrame = args.Flag("--single-frame");
        double[]? l2 = args.Optional("--l2")?.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        string? cache = args.Optional("--features-cache") ?? DefaultFeatureCache;
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();
        ProbeStore.ValidateName(name); // before the features are computed, not after

        var dataset = LabelledVideos.Load(data);
        await using var model = await OpenAsync(modelFolder, cpu);
        var space = Space(model.Manifest, preset);
        var options = new ProbeFeatureOptions
        {
            View = space.View,
            ClipsPerVideo = clips,
            Seed = seed,
            Augment = augment,
            Flip = flip,
            TrainCrop = trainCrop,
            SingleFrame = singleFrame,
        };
        error.WriteLine($"Training features: {Describe(preset, space.View, singleFrame)}; {clips} clips per video, " +
            (augment == ProbeAugment.Protocol ? $"random resized crops of {trainCrop ?? space.View.CropSize}, flip {(flip ? "on" : "off")}" : $"centre crops of {trainCrop ?? space.View.CropSize}") + $", seed {seed}.");
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cache);
        var perVideo = await ForEachVideoAsync(dataset.Videos, error, "features", video => features.TrainingAsync(model, video.Path, options));
        var examples = dataset.Videos.Zip(perVideo).SelectMany(p => p.Second.Select(f => (f, p.First.Label, p.First.Path))).ToList();

        var (probe, chosen, sweep) = ProbeTraining.Fit(examples, new ProbeTrainingOptions(trainer, l2, Seed: seed));
        var trainingMetrics = ProbeEvaluation.Evaluate(probe.Classes, examples.Select(e => (e.Item2, probe.Predict(e.Item1))).ToArray());
        var store = new ProbeStore(modelFolder);
        await store.SaveAsync(new ProbeMetadata
        {
            Name = name,
            Encoder = model.Name,
            ModelId = space.ModelId,
            EmbeddingSize = space.Output.Dimension,
            Classes = probe.Classes,
            Trainer = trainer,
            L2 = chosen,
            Sweep = sweep,
            Preset = preset?.Name,
            View = space.View,
            Features = options with { View = null }, // the view is recorded once, above
            DataFingerprint = Fingerprint(dataset, options),
            TrainingExamples = examples.Count,
            TrainingMetrics = trainingMetrics,
        }, probe);

        foreach (var s in sweep)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  L2 {s.L2,-8:G3} held-out top-1 {s.Accuracy:P1}  log-loss {s.LogLoss:F3}{(s.L2 == chosen ? "  <- chosen" : "")}"));
        }

        output.WriteLine($"Probe '{name}' ({trainer}, L2 {chosen:G3}) on {examples.Count} clips of {dataset.Videos.Count} videos, {probe.Classes.Count} classes; training top-1 {trainingMetrics.Top1:P1}.");
        output.WriteLine($"View: {Describe(preset, space.View, singleFrame)}.");
        output.WriteLine($"Saved {store.PathOf(name)} for model id {space.ModelId}");
        return 0;
    }

    public static async Task<int> EvalAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string probeName = args.Required("--probe");
        string data = args.Required("--data");
        string? json = args.Optional("--json");
        string? png = args.Optional("--confusion");
        var preset = Preset(args);
        bool singleFrame = args.Flag("--single-frame");
        string? cache = args.Optional("--features-cache") ?? DefaultFeatureCache;
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();

        var dataset = LabelledVideos.Load(data);
        await using var model = await OpenAsync(modelFolder, cpu);
        var space = Space(model.Manifest, preset);
        var stored = await new ProbeStore(modelFolder).LoadAsync(probeName, space);
        var trained = stored.Metadata.Features;
        if ((trained?.SingleFrame ?? false) != singleFrame)
        {
            throw new UsageException(singleFrame
                ? $"Probe '{probeName}' was trained on clips: evaluate it without --single-frame."
                : $"Probe '{probeName}' was trained on single-frame features: evaluate it with --single-frame.");
        }

        var view = space.View;
        int views = view.Clips * view.CropsPerClip;
        error.WriteLine($"Evaluating {dataset.Videos.Count} videos x {views} views ({Describe(preset, view, singleFrame)}): " +
            $"about {dataset.Videos.Count * views * model.Manifest.Architecture.FlopsPerClip / 1e12:F2} TFLOPs of inference at the manifest's clip size.");
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cache);
        var options = new ProbeFeatureOptions { View = view, SingleFrame = singleFrame };
        var perVideo = await ForEachVideoAsync(dataset.Videos, error, "evaluate", video => features.TestAsync(model, video.Path, options));
        var scored = dataset.Videos.Zip(perVideo, (video, v) => (video.Label, ProbeEvaluation.AverageViews(v.Select(stored.Probe.Predict).ToArray()))).ToList();

        var unknown = dataset.Classes.Except(stored.Probe.Classes).ToArray();
        if (unknown.Length > 0)
        {
            throw new UsageException($"The data has classes the probe does not know: {string.Join(", ", unknown)}.");
        }

        var metrics = ProbeEvaluation.Evaluate(stored.Probe.Classes, scored);
        output.WriteLine($"{"class",-24} {"precision",9} {"recall",7}");
        for (int c = 0; c < metrics.Classes.Count; c++)
        {
            output.WriteLine($"{metrics.Classes[c],-24} {metrics.Precision[c],9:P1} {metrics.Recall[c],7:P1}");
        }

        output.WriteLine($"top-1 {metrics.Top1:P2}  top-5 {metrics.Top5:P2}  log-loss {metrics.LogLoss:F4}  ({metrics.Examples} videos, {views} views each)");
        output.WriteLine($"View: {Describe(preset, view, singleFrame)}; model id {space.ModelId}.");
        if (json is not null)
        {
            var settings = new EvaluationSettings(probeName, model.Name, space.ModelId, preset?.Name, view, singleFrame, stored.Metadata.Trainer, stored.Metadata.L2,
                trained?.ClipsPerVideo, trained?.Seed, trained?.Augment, trained?.Flip, trained is null ? null : trained.TrainCrop ?? view.CropSize,
                stored.Metadata.SchemaVersion, Path.GetFullPath(data));
            File.WriteAllText(json, JsonSerializer.Serialize(new EvaluationReport(metrics, settings), EncoderManifest.Json));
        }

        if (png is not null)
        {
            ConfusionPlot.Save(png, metrics.Classes, metrics.Confusion, $"{probeName} on {Path.GetFileName(data)}: top-1 {metrics.Top1:P1}");
        }

        return 0;
    }

    public static async Task<int> ClassifyAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string probeName = args.Required("--probe");
        int top = args.Int("--top", 5, 1, 1000);
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();
        if (args.Positionals.Count == 0)
        {
            throw new UsageException("Name at least one video to classify.");
        }

        await using var model = await OpenAsync(modelFolder, cpu);
        var stored = await new ProbeStore(modelFolder).LoadAsync(probeName, model.Manifest);
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cacheFolder: null);
        int failures = 0;
        foreach (string video in args.Positionals)
        {
            try
            {
                var probabilities = ProbeEvaluation.AverageViews((await features.TestAsync(model, video)).Select(stored.Probe.Predict).ToArray());
                var ranked = probabilities.Select((p, i) => new { label = stored.Probe.Classes[i], probability = p }).OrderByDescending(x => x.probability).Take(top);
                output.WriteLine(JsonSerializer.Serialize(new { video, model = model.Name, probe = probeName, model.Manifest.ModelId, classes = ranked }, JsonLines));
            }
            catch (CvrlException e)
            {
                failures++;
                error.WriteLine($"cvrl: {video}: {e.Message}");
            }
        }

        return failures == 0 ? 0 : 1;
    }

    internal static string DefaultFeatureCache => Path.Combine(Path.GetDirectoryName(TrainCommands.DefaultCache)!, "features");

    internal static async Task<EncoderModel> OpenAsync(string folder, bool cpu)
    {
        try
        {
            return await EncoderModel.LoadAsync(folder, new EncoderSessionOptions { Provider = cpu ? ProviderPreference.Cpu : ProviderPreference.Cuda, WarmUp = false, InferenceTimeout = Timeout.InfiniteTimeSpan });
        }
        catch (ModelLoadException e)
        {
            throw new UsageException(e.Message);
        }
    }

    /// <summary>The <c>--preset</c> named, or null for the manifest's view.</summary>
    private static EvaluationPreset? Preset(CommandArgs args) => args.Optional("--preset") is { } name
        ? EvaluationPresets.Find(name) ?? throw new UsageException($"--preset must be one of {string.Join(", ", EvaluationPresets.All.Select(p => p.Name))} (got '{name}').")
        : null;

    private static EncoderManifest Space(EncoderManifest manifest, EvaluationPreset? preset)
    {
        try
        {
            return ProbeFeatures.SpaceOf(manifest, preset?.View);
        }
        catch (InvalidRequestException e)
        {
            throw new UsageException($"Preset '{preset?.Name}': {e.Message}");
        }
    }

    private static string Describe(EvaluationPreset? preset, ViewSpec view, bool singleFrame) => string.Create(CultureInfo.InvariantCulture,
        $"{(preset is null ? "the manifest's view" : $"preset '{preset.Name}'")}: {view.Clips} clips x {view.CropsPerClip} crops of {view.CropSize}, " +
        $"{view.Frames}x{view.Stride} frames{(singleFrame ? " (single frame repeated)" : "")}, short side {view.ShortSide}");

    /// <summary>
    /// Features of every video, in order, one video per core at a time: each video is an ffprobe and an
    /// ffmpeg process, mostly start-up cost on short videos, so one at a time leaves a core idle.
    /// </summary>
    private static async Task<float[][][]> ForEachVideoAsync(IReadOnlyList<LabelledVideo> videos, TextWriter error, string label, Func<LabelledVideo, Task<float[][]>> compute)
    {
        var results = new float[videos.Count][][];
        int done = 0;
        await Parallel.ForAsync(0, videos.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount }, async (i, _) =>
        {
            results[i] = await compute(videos[i]);
            int n = Interlocked.Increment(ref done);
            lock (error)
            {
                Progress(error, label, n, videos.Count);
            }
        });
        return results;
    }

    private static string Fingerprint(LabelledDataset dataset, ProbeFeatureOptions options)
    {
        var text = new StringBuilder(JsonSerializer.Serialize(options, JsonLines)).Append('\n');
        foreach (var v in dataset.Videos.OrderBy(v => v.Path, StringComparer.Ordinal))
        {
            text.Append(CultureInfo.InvariantCulture, $"{v.Path}|{new FileInfo(v.Path).Length}|{v.Label}\n");
        }

        return Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(text.ToString())));
    }

    internal static void Progress(TextWriter error, string label, int done, int total)
    {
        if (done == total || done % Math.Max(1, total / 10) == 0)
        {
            error.WriteLine($"{label}: {done}/{total} videos");
        }
    }
}

/// <summary>What <c>cvrl probe eval --json</c> writes: the metrics and every setting needed to reproduce them.</summary>
internal sealed record EvaluationReport(ProbeMetrics Metrics, EvaluationSettings Settings);

/// <summary>
/// The settings behind an evaluation: the probe and its embedding space (model id, preset, test view,
/// single-frame) and how its training features were made (null for probes saved before schema 3). Every
/// key is written, null included: a null preset says the manifest's view was used.
/// </summary>
internal sealed record EvaluationSettings(
    string Probe,
    string Model,
    string ModelId,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Preset,
    ViewSpec View,
    bool SingleFrame,
    ProbeTrainer Trainer,
    double L2,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? ClipsPerVideo,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? Seed,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ProbeAugment? Augment,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] bool? Flip,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] int? TrainCrop,
    int ProbeSchemaVersion,
    string Data);
