using CvrlServe.Core.Inference;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Modules;
using CvrlServe.Training.Tests.Commands;
using CvrlServe.Training.Tests.Export;
using CvrlServe.Training.Trainers;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Trainers;

[Collection(SharedTrainingVideos.Name)]
public sealed class SupervisedTrainerTests(TrainingVideos videos, ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-supervised-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private static ExperimentConfig Config(int steps) => ExperimentConfig.Load(PretrainerTests.TinyConfig,
    [
        $"steps={steps}", "batchSize=6", "data.frames=4", "data.cropSize=32", "data.shortSide=40", "data.maxCachedFrames=30",
        "optimizer.warmupSteps=3", "optimizer.learningRate=0.05", "optimizer.referenceBatch=6", "checkpointEvery=20",
    ]);

    [Fact]
    public async Task RunAsync_LabelledVideos_FitsTrainingSetWellAboveChanceAndExports()
    {
        // The held-out set here is a CSV naming the training videos in reverse order: the same videos
        // scored the same way must give the training accuracy whatever their order.
        string evalCsv = Path.Combine(_folder, "eval.csv");
        File.WriteAllLines(evalCsv, ["path,label", .. Directory.GetDirectories(videos.Labelled).SelectMany(d => Directory.GetFiles(d).Select(f => $"{f},{Path.GetFileName(d)}")).Reverse()]);
        var summary = await SupervisedTrainer.RunAsync(new SupervisedRun(videos.Labelled, Path.Combine(_folder, "run"), Path.Combine(_folder, "cache"), Config(120), false, new StringWriter(), EvalData: evalCsv));
        output.WriteLine($"classes {string.Join(',', summary.Classes)}; loss {summary.Steps[0].Loss:F3} -> {summary.Steps[^1].Loss:F3}; training accuracy {summary.TrainAccuracy:P0}");
        Assert.Equal(["down", "pulse", "right"], summary.Classes);
        Assert.True(summary.TrainAccuracy >= 0.75, $"training accuracy {summary.TrainAccuracy} (chance 0.33)");
        Assert.Equal(summary.TrainAccuracy, summary.EvalAccuracy);

        string model = Path.Combine(_folder, "models", "sup");
        var (code, _, stderr) = ModelCommandsTests.Run("export", "--checkpoint", Path.Combine(_folder, "run"), "--out", model, "--frames", "4", "--short-side", "40", "--crop", "32");
        Assert.True(code == 0, stderr);
        Assert.Equal("supervised", EncoderManifest.Load(model).Provenance.Kind);
    }

    [Fact]
    public async Task RunAsync_SingleFrames_TrainsTheSupervisedInflatedBaseline()
    {
        var config = ExperimentConfig.Load(PretrainerTests.TinyConfig,
        [
            "steps=4", "batchSize=6", "data.frames=1", "data.cropSize=32", "data.shortSide=40", "data.maxCachedFrames=30",
            "optimizer.warmupSteps=1", "optimizer.learningRate=0.05", "optimizer.referenceBatch=6",
        ]);
        var summary = await SupervisedTrainer.RunAsync(new SupervisedRun(videos.Labelled, Path.Combine(_folder, "frames"), Path.Combine(_folder, "cache"), config, false, new StringWriter()));
        Assert.Equal(4, summary.Steps.Count);
        Assert.All(summary.Steps, s => Assert.True(double.IsFinite(s.Loss)));
        var (encoder, info) = EncoderCheckpoint.Load(Path.Combine(_folder, "frames"));
        encoder.Dispose();
        Assert.Equal(1, info.PretrainingClip!.Frames);
    }

    [Fact]
    public void BuildModel_WithInit_EncoderGivesThePretrainedOutputsBeforeTheFirstStep()
    {
        using var pretrained = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        OnnxTestKit.RandomizeBatchNorm(pretrained, seed: 2);
        string checkpoint = Path.Combine(_folder, "pre");
        EncoderCheckpoint.Save(checkpoint, pretrained, new CheckpointInfo("r3d18", 0.25, "pretrained", 10));

        using var model = SupervisedTrainer.BuildModel(Config(10), 3, checkpoint);
        long[] shape = [2, 3, 4, 32, 32];
        float[] input = OnnxTestKit.RandomInput(shape, seed: 5);
        Assert.Equal(OnnxTestKit.TorchForward(pretrained, input, shape), OnnxTestKit.TorchForward(model.Encoder, input, shape));

        using var fresh = SupervisedTrainer.BuildModel(Config(10), 3, init: null);
        Assert.NotEqual(OnnxTestKit.TorchForward(pretrained, input, shape), OnnxTestKit.TorchForward(fresh.Encoder, input, shape));
    }

    [Fact]
    public void BuildModel_InitOfAnotherArchitecture_Refused()
    {
        using var other = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        string checkpoint = Path.Combine(_folder, "other");
        EncoderCheckpoint.Save(checkpoint, other, new CheckpointInfo("r3d50", 0.25, "pretrained", 10));
        var error = Assert.Throws<ConfigException>(() => SupervisedTrainer.BuildModel(Config(10), 3, checkpoint));
        Assert.Contains("r3d50", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Cli_MalformedCsv_ExitOneWithLineNumbers()
    {
        string csv = Path.Combine(_folder, "labels.csv");
        File.WriteAllText(csv, $"{Path.Combine(videos.Labelled, "right", "r0.mp4")},right\nnot-a-row\n/nope.mp4,down\n");
        var (code, _, stderr) = ModelCommandsTests.Run("train-supervised", "--data", csv, "--config", PretrainerTests.TinyConfig, "--out", Path.Combine(_folder, "bad"));
        Assert.Equal(1, code);
        Assert.Contains("labels.csv:2:", stderr, StringComparison.Ordinal);
        Assert.Contains("labels.csv:3: missing file", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_HeldOutClassUnknownToTraining_RefusedBeforeTraining()
    {
        string evalCsv = Path.Combine(_folder, "eval.csv");
        string video = Directory.GetFiles(Directory.GetDirectories(videos.Labelled)[0])[0];
        File.WriteAllLines(evalCsv, ["path,label", $"{video},jump"]);
        var error = await Assert.ThrowsAsync<ConfigException>(() => SupervisedTrainer.RunAsync(
            new SupervisedRun(videos.Labelled, Path.Combine(_folder, "run"), Path.Combine(_folder, "cache"), Config(5), false, new StringWriter(), EvalData: evalCsv)));
        Assert.Contains("jump", error.Message, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_folder, "run", "checkpoints")));
    }

    [Fact]
    public void Cli_PretrainMissingData_ExitTwo()
    {
        var (code, _, stderr) = ModelCommandsTests.Run("pretrain", "--data", Path.Combine(_folder, "nothing"), "--config", PretrainerTests.TinyConfig);
        Assert.Equal(2, code);
        Assert.Contains("does not exist", stderr, StringComparison.Ordinal);
    }
}
