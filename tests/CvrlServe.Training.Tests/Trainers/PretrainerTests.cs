using CvrlServe.Core.Inference;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Tests.Commands;
using CvrlServe.Training.Trainers;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Trainers;

[Collection(SharedTrainingVideos.Name)]
public sealed class PretrainerTests(TrainingVideos videos, ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-pretrain-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    internal static string TinyConfig => Path.Combine(AppContext.BaseDirectory, "experiments", "cpu-tiny.json");

    /// <summary>
    /// The CPU preset shrunk to seconds: 4-frame 32² clips, batch 8. Every augmentation op stays on, but
    /// colour jitter and grayscale are drawn half as often: the generated videos differ mostly in colour,
    /// and at full strength 200 steps of a 1 M-parameter net show no clear trend.
    /// </summary>
    internal static string[] TinyOverrides(int steps) =>
    [
        $"steps={steps}", "batchSize=8", "data.frames=4", "data.cropSize=32", "data.shortSide=40", "data.maxCachedFrames=45",
        "optimizer.warmupSteps=3", "optimizer.learningRate=0.5", "checkpointEvery=10", "model.projectionSize=32", "augment.jitterProbability=0.4", "augment.grayscaleProbability=0.1",
    ];

    private PretrainRun Run(string name, int steps, bool resume = false, long? stopAt = null, params string[] extra) =>
        new(videos.Unlabeled, Path.Combine(_folder, name), Path.Combine(_folder, "cache"), ExperimentConfig.Load(TinyConfig, [.. TinyOverrides(steps), .. extra]), resume, new StringWriter(), StopAtStep: stopAt);

    [Fact]
    public async Task RunAsync_TinyRun_LossFallsAccuracyRisesAndTheExportKeepsParity()
    {
        var summary = await Pretrainer.RunAsync(Run("tiny", 200));

        int quarter = summary.Steps.Count / 4;
        double firstLoss = summary.Steps.Take(quarter).Average(s => s.Loss);
        double lastLoss = summary.Steps.TakeLast(quarter).Average(s => s.Loss);
        double firstAccuracy = summary.Steps.Take(quarter).Average(s => s.Accuracy);
        double lastAccuracy = summary.Steps.TakeLast(quarter).Average(s => s.Accuracy);
        output.WriteLine($"loss {firstLoss:F3} -> {lastLoss:F3}, accuracy {firstAccuracy:P0} -> {lastAccuracy:P0}, {summary.Elapsed.TotalSeconds:F1} s");
        Assert.Equal(8, summary.Videos);
        Assert.True(lastLoss < firstLoss, $"loss {firstLoss} -> {lastLoss}");
        Assert.True(lastAccuracy > firstAccuracy, $"accuracy {firstAccuracy} -> {lastAccuracy}");
        Assert.True(File.Exists(Path.Combine(_folder, "tiny", "curves.png")));
        Assert.Equal(201, File.ReadAllLines(Path.Combine(_folder, "tiny", "metrics.csv")).Length);

        // One dispose scope per step: the live tensor count does not grow.
        Assert.Single(summary.LiveTensors.Skip(2).Distinct());

        string model = Path.Combine(_folder, "models", "tiny");
        var (code, _, stderr) = ModelCommandsTests.Run("export", "--checkpoint", Path.Combine(_folder, "tiny"), "--out", model);
        Assert.True(code == 0, stderr);
        var manifest = EncoderManifest.Load(model);
        Assert.Equal((4, 2, 32, 40), (manifest.View.Frames, manifest.View.Stride, manifest.View.CropSize, manifest.View.ShortSide)); // the training view (TinyOverrides)
        Assert.Equal(("pretrained", 200L), (manifest.Provenance.Kind, manifest.Provenance.Steps!.Value));
        var (encoder, _) = EncoderCheckpoint.Load(Path.Combine(_folder, "tiny"));
        using (encoder)
        {
            ModelCommandsTests.AssertServesLikeTorchSharp(model, manifest, encoder);
        }
    }

    [Fact]
    public async Task RunAsync_Resume_ContinuesTheSameRun()
    {
        // A gentle learning rate: multithreaded float sums differ in the last bits from run to run, and a
        // large rate would amplify that into differences that have nothing to do with resuming.
        string[] gentle = ["optimizer.learningRate=0.05"];
        var whole = await Pretrainer.RunAsync(Run("whole", 20, extra: gentle));
        await Pretrainer.RunAsync(Run("split", 20, stopAt: 10, extra: gentle));
        var rest = await Pretrainer.RunAsync(Run("split", 20, resume: true, extra: gentle));
        output.WriteLine($"max |loss difference| {rest.Steps.Select((s, i) => Math.Abs(s.Loss - whole.Steps[10 + i].Loss)).Max():E2}");

        Assert.Equal(Enumerable.Range(10, 10).Select(i => (long)i), rest.Steps.Select(s => s.Step));
        for (int i = 0; i < 10; i++)
        {
            double expected = whole.Steps[10 + i].Loss;
            // Same batches, weights and optimizer state; only float summation order may differ.
            Assert.True(Math.Abs(rest.Steps[i].Loss - expected) <= 1e-3 * Math.Max(1, Math.Abs(expected)),
                $"step {10 + i}: resumed {rest.Steps[i].Loss} vs uninterrupted {expected}");
        }
    }

    [Fact]
    public void PretrainCommand_GivenInEpochs_ResumesWithTheSameArguments()
    {
        // 8 videos at batch 8: an epoch is one step. The saved config is the resolved one, and resuming with
        // the same command line resolves to it again.
        string output = Path.Combine(_folder, "epochs");
        string[] overrides =
        [
            .. TinyOverrides(1).Where(o => !o.StartsWith("steps=", StringComparison.Ordinal) && !o.StartsWith("optimizer.warmupSteps=", StringComparison.Ordinal)),
            "steps=null", "epochs=6", "optimizer.warmupSteps=null", "optimizer.warmupEpochs=1",
        ];
        string[] args =
        [
            "pretrain", "--data", videos.Unlabeled, "--config", TinyConfig, "--out", output, "--cache", Path.Combine(_folder, "cache"),
            .. overrides.SelectMany(o => new[] { "--set", o }),
        ];
        var (code, _, stderr) = ModelCommandsTests.Run([.. args, "--stop-at", "3"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("6 steps, 6 epochs of 1 steps (8 videos / batch 8); warm-up 1 steps (1 epochs)", stderr, StringComparison.Ordinal);
        var saved = TrainerState.Read(EncoderCheckpoint.Resolve(output));
        Assert.Equal((3L, 6, 1, (double?)null), (saved.Step, saved.Config.Steps, saved.Config.Optimizer.WarmupSteps, saved.Config.Epochs));
        Assert.Equal(saved.Config.ToJson(), File.ReadAllText(Path.Combine(output, "config.json")));

        (code, var stdout, stderr) = ModelCommandsTests.Run([.. args, "--resume"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Trained steps 4-6 of 6", stdout, StringComparison.Ordinal);

        // --steps still replaces the length, here to extend the run.
        (code, stdout, stderr) = ModelCommandsTests.Run([.. args, "--resume", "--steps", "8"]);
        Assert.True(code == 0, stderr);
        Assert.Contains("Trained steps 7-8 of 8", stdout, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_SingleFramesAtZeroInterval_SimClrOnFramesThenInflatesToAVideoModel()
    {
        // SimCLR-inflated: two augmentations of one frame, then every kernel at its centre temporal tap.
        var summary = await Pretrainer.RunAsync(Run("frames", 4, extra: ["data.frames=1", "data.interval=zero"]));
        Assert.Equal(4, summary.Steps.Count);
        Assert.All(summary.Steps, s => Assert.True(double.IsFinite(s.Loss)));

        string inflated = Path.Combine(_folder, "frames-inflated");
        var (code, _, stderr) = ModelCommandsTests.Run("inflate", "--checkpoint", Path.Combine(_folder, "frames"), "--out", inflated, "--frames", "4", "--stride", "2");
        Assert.True(code == 0, stderr);
        var state = TrainerState.Read(inflated);
        Assert.NotNull(state.InflatedFrom);
        Assert.Equal((4, 2), (state.Config.Data.Frames, state.Config.Data.Stride));

        string model = Path.Combine(_folder, "models", "frames-inflated");
        (code, _, stderr) = ModelCommandsTests.Run("export", "--checkpoint", inflated, "--out", model);
        Assert.True(code == 0, stderr);
        var manifest = EncoderManifest.Load(model);
        Assert.Equal((4, 2, 32, 40), (manifest.View.Frames, manifest.View.Stride, manifest.View.CropSize, manifest.View.ShortSide));
        Assert.Equal("pretrained-inflated", manifest.Provenance.Kind);
    }

    [Fact]
    public async Task RunAsync_DataAsALabelledList_TrainsOnTheListedVideosOnly()
    {
        // A split list beside videos it leaves out (a test split): only the listed ones are pretrained on.
        var all = Directory.GetFiles(videos.Unlabeled, "*.mp4", SearchOption.AllDirectories).Order(StringComparer.Ordinal).ToArray();
        string list = Path.Combine(_folder, "train.csv");
        File.WriteAllLines(list, ["path,label", .. all.Take(all.Length - 2).Select(f => $"{f},ignored")]);
        var run = Run("list", 4) with { Data = list };
        var summary = await Pretrainer.RunAsync(run);
        Assert.Equal(all.Length - 2, summary.Videos);
    }

    [Fact]
    public void Load_PaperConfig_RefusedAsTooLargeForThisMachine()
    {
        string paper = Path.Combine(AppContext.BaseDirectory, "experiments", "cvrl-k600-paper.json");
        var config = ExperimentConfig.Load(paper);
        var error = Assert.Throws<ConfigException>(() => MemoryEstimate.Check(config, 2 * config.BatchSize, 24L << 30));
        output.WriteLine(error.Message);
        Assert.Contains("lower batchSize", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_BadValuesAndUnknownKeys_Refused()
    {
        var error = Assert.Throws<ConfigException>(() => ExperimentConfig.Load(TinyConfig, ["batchSize=1", "optimizer.kind=rmsprop", "data.cropSize=500"]));
        Assert.Contains(error.Problems, p => p.Contains("batchSize must be at least 2", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("optimizer.kind", StringComparison.Ordinal));
        Assert.Contains(error.Problems, p => p.Contains("data.shortSide", StringComparison.Ordinal));
        var unknown = Assert.Throws<ConfigException>(() => ExperimentConfig.Load(TinyConfig, ["model.depth=50"]));
        Assert.Contains("depth", unknown.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Schedule_WarmupThenCosine()
    {
        var schedule = new LearningRateSchedule(1.0, 10, 100);
        Assert.Equal(0, schedule.At(0));
        Assert.Equal(0.5 * 0.5 * (1 + Math.Cos(Math.PI * 0.1)), schedule.At(5), 9);
        Assert.Equal(0.5, schedule.At(50), 9);
        Assert.Equal(0, schedule.At(100), 9);
    }
}
