using CvrlServe.Training.Config;
using CvrlServe.Training.Trainers;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl pretrain</c> and <c>cvrl train-supervised</c>.</summary>
internal static class TrainCommands
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--resume" };

    /// <summary>The options both training commands take.</summary>
    private sealed record Common(string Data, ExperimentConfig Config, string Output, string Cache, bool Resume, long? StopAt);

    public static async Task<int> PretrainAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        var common = Parse(args);
        args.RejectUnknown();
        var summary = await Pretrainer.RunAsync(new PretrainRun(common.Data, common.Output, common.Cache, common.Config, common.Resume, error,
            Interactive: !Console.IsErrorRedirected, StopAtStep: common.StopAt));
        Summarize(output, summary.Steps, summary.Config.TotalSteps, $"on {summary.Videos} videos", summary.Elapsed);
        output.WriteLine($"Checkpoint: {summary.LastCheckpoint}");
        output.WriteLine($"Export it with: cvrl export --checkpoint {common.Output} --out models/{common.Config.Name}");
        return 0;
    }

    public static async Task<int> SupervisedAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        var common = Parse(args);
        string? init = args.Optional("--init");
        string? eval = args.Optional("--eval");
        args.RejectUnknown();
        if (eval is not null && !Directory.Exists(eval) && !File.Exists(eval))
        {
            throw new UsageException($"--eval '{eval}' does not exist.");
        }

        var summary = await SupervisedTrainer.RunAsync(new SupervisedRun(common.Data, common.Output, common.Cache, common.Config, common.Resume, error, init,
            Interactive: !Console.IsErrorRedirected, StopAtStep: common.StopAt, EvalData: eval));
        Summarize(output, summary.Steps, summary.Config.TotalSteps, $"on {summary.Classes.Count} classes", summary.Elapsed);
        output.WriteLine($"Training-set accuracy: {summary.TrainAccuracy:P1}");
        if (summary.EvalAccuracy is { } held)
        {
            output.WriteLine($"Held-out accuracy: {held:P1}");
        }

        output.WriteLine($"Checkpoint: {summary.LastCheckpoint}");
        output.WriteLine($"Export it with: cvrl export --checkpoint {common.Output} --out models/{common.Config.Name}-supervised");
        return 0;
    }

    /// <summary>Decoded training frames live here unless --cache says otherwise.</summary>
    public static string DefaultCache => Path.Combine(
        Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } xdg ? xdg : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
        "cvrl", "frames");

    private static Common Parse(CommandArgs args)
    {
        string data = args.Required("--data");
        string configPath = args.Required("--config");
        var overrides = args.All("--set").ToList();
        if (args.Optional("--steps") is { } steps)
        {
            // --steps replaces the config's length, whether it was given in steps or in epochs.
            overrides.Add($"steps={steps}");
            overrides.Add("epochs=null");
        }

        var config = ExperimentConfig.Load(configPath, overrides);
        string outFolder = args.Optional("--out") ?? Path.Combine("runs", config.Name);
        string cache = args.Optional("--cache") ?? DefaultCache;
        bool resume = args.Flag("--resume");
        long? stopAt = args.Optional("--stop-at") is null ? null : args.Int("--stop-at", 0);
        if (!Directory.Exists(data) && !File.Exists(data))
        {
            throw new UsageException($"--data '{data}' does not exist.");
        }

        return new Common(data, config, outFolder, cache, resume, stopAt);
    }

    private static void Summarize(TextWriter output, IReadOnlyList<StepMetrics> steps, int total, string what, TimeSpan elapsed)
    {
        if (steps.Count == 0)
        {
            output.WriteLine($"Nothing to train: the run is already at step {total}.");
            return;
        }

        var first = steps[0];
        var last = steps[^1];
        output.WriteLine($"Trained steps {first.Step + 1}-{last.Step + 1} of {total} {what} in {elapsed:hh\\:mm\\:ss}: " +
            $"loss {first.Loss:F3} -> {last.Loss:F3}, accuracy {first.Accuracy:P0} -> {last.Accuracy:P0}.");
    }
}
