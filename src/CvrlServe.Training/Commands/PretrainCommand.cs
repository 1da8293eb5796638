using CvrlServe.Training.Config;
using CvrlServe.Training.Trainers;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl pretrain</c>: CVRL self-supervised pretraining on a folder of videos.</summary>
internal static class PretrainCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--resume" };

    public static async Task<int> RunAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string data = args.Required("--data");
        string configPath = args.Required("--config");
        var overrides = args.All("--set").ToList();
        if (args.Optional("--steps") is { } steps)
        {
            overrides.Add($"steps={steps}");
        }

        var config = ExperimentConfig.Load(configPath, overrides);
        string outFolder = args.Optional("--out") ?? Path.Combine("runs", config.Name);
        string cache = args.Optional("--cache") ?? DefaultCache;
        bool resume = args.Flag("--resume");
        long? stopAt = args.Optional("--stop-at") is null ? null : args.Int("--stop-at", 0);
        args.RejectUnknown();
        if (!Directory.Exists(data))
        {
            throw new UsageException($"--data '{data}' is not a folder.");
        }

        var summary = await Pretrainer.RunAsync(new PretrainRun(data, outFolder, cache, config, resume, error, Interactive: !Console.IsErrorRedirected, StopAtStep: stopAt));
        if (summary.Steps.Count > 0)
        {
            var first = summary.Steps[0];
            var last = summary.Steps[^1];
            output.WriteLine($"Trained steps {first.Step + 1}-{last.Step + 1} of {config.Steps} on {summary.Videos} videos in {summary.Elapsed:hh\\:mm\\:ss}: " +
                $"loss {first.Loss:F3} -> {last.Loss:F3}, contrastive accuracy {first.Accuracy:P0} -> {last.Accuracy:P0}.");
        }

        output.WriteLine($"Checkpoint: {summary.LastCheckpoint}");
        output.WriteLine($"Export it with: cvrl export --checkpoint {outFolder} --out models/{config.Name}");
        return 0;
    }

    /// <summary>Decoded training frames live here unless --cache says otherwise.</summary>
    public static string DefaultCache => Path.Combine(
        Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
        "cvrl", "frames");
}
