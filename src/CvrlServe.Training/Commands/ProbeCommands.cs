using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
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
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--cpu" };
    private static readonly JsonSerializerOptions JsonLines = new(EncoderManifest.Json) { WriteIndented = false };

    public static async Task<int> TrainAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string data = args.Required("--data");
        string name = args.Required("--name");
        var trainer = Enum.TryParse<ProbeTrainer>(args.Optional("--trainer") ?? "lbfgs", ignoreCase: true, out var t) ? t : throw new UsageException("--trainer must be lbfgs or sdca.");
        int clips = args.Int("--clips-per-video", 1, 1, 64);
        int seed = args.Int("--seed", 0, 0);
        double[]? l2 = args.Optional("--l2")?.Split(',').Select(v => double.Parse(v, CultureInfo.InvariantCulture)).ToArray();
        string? cache = args.Optional("--features-cache") ?? DefaultFeatureCache;
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();
        ProbeStore.ValidateName(name); // before the features are computed, not after

        var dataset = LabelledVideos.Load(data);
        await using var model = await OpenAsync(modelFolder, cpu);
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cache);
        var examples = new List<(float[], string)>();
        int done = 0;
        foreach (var video in dataset.Videos)
        {
            foreach (var f in await features.TrainingAsync(model, video.Path, clips, seed))
            {
                examples.Add((f, video.Label));
            }

            Progress(error, "features", ++done, dataset.Videos.Count);
        }

        var (probe, chosen, sweep) = ProbeTraining.Fit(examples, new ProbeTrainingOptions(trainer, l2, Seed: seed));
        var trainingMetrics = ProbeEvaluation.Evaluate(probe.Classes, examples.Select(e => (e.Item2, probe.Predict(e.Item1))).ToArray());
        var manifest = model.Manifest;
        var store = new ProbeStore(modelFolder);
        await store.SaveAsync(new ProbeMetadata
        {
            Name = name,
            Encoder = model.Name,
            ModelId = manifest.ModelId,
            EmbeddingSize = manifest.Output.Dimension,
            Classes = probe.Classes,
            Trainer = trainer,
            L2 = chosen,
            Sweep = sweep,
            DataFingerprint = Fingerprint(dataset, clips, seed),
            TrainingExamples = examples.Count,
            TrainingMetrics = trainingMetrics,
        }, probe);

        foreach (var s in sweep)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  L2 {s.L2,-8:G3} held-out top-1 {s.Accuracy:P1}  log-loss {s.LogLoss:F3}{(s.L2 == chosen ? "  <- chosen" : "")}"));
        }

        output.WriteLine($"Probe '{name}' ({trainer}, L2 {chosen:G3}) on {examples.Count} clips of {dataset.Videos.Count} videos, {probe.Classes.Count} classes; training top-1 {trainingMetrics.Top1:P1}.");
        output.WriteLine($"Saved {store.PathOf(name)} for model id {manifest.ModelId}");
        return 0;
    }

    public static async Task<int> EvalAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string probeName = args.Required("--probe");
        string data = args.Required("--data");
        string? json = args.Optional("--json");
        string? png = args.Optional("--confusion");
        string? cache = args.Optional("--features-cache") ?? DefaultFeatureCache;
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();

        var dataset = LabelledVideos.Load(data);
        await using var model = await OpenAsync(modelFolder, cpu);
        var stored = await new ProbeStore(modelFolder).LoadAsync(probeName, model.Manifest);
        var view = model.Manifest.View;
        int views = view.Clips * view.CropsPerClip;
        error.WriteLine($"Evaluating {dataset.Videos.Count} videos x {views} views ({view.Clips} clips x {view.CropsPerClip} crops): " +
            $"about {dataset.Videos.Count * views * model.Manifest.Architecture.FlopsPerClip / 1e12:F2} TFLOPs of inference.");
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cache);
        var scored = new List<(string, float[])>();
        int done = 0;
        foreach (var video in dataset.Videos)
        {
            var perView = (await features.TestAsync(model, video.Path)).Select(stored.Probe.Predict).ToArray();
            scored.Add((video.Label, ProbeEvaluation.AverageViews(perView)));
            Progress(error, "evaluate", ++done, dataset.Videos.Count);
        }

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
        if (json is not null)
        {
            File.WriteAllText(json, JsonSerializer.Serialize(metrics, EncoderManifest.Json));
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

    private static string Fingerprint(LabelledDataset dataset, int clips, int seed)
    {
        var text = new StringBuilder($"clips={clips};seed={seed}\n");
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
