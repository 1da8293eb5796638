using System.Text.Json;
using CvrlServe.Core.Inference;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;
using CvrlServe.Training.Tests.Export;
using CvrlServe.Training.Trainers;
using Microsoft.ML.OnnxRuntime;

namespace CvrlServe.Training.Tests.Commands;

public sealed class ModelCommandsTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-models-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Init_WritesAModelOrtLoadsWithTheManifestsInputAndTorchSharpAgrees()
    {
        string model = Path.Combine(_folder, "random");
        var (code, stdout, stderr) = Run("init", "--arch", "r3d18", "--width", "0.25", "--out", model, "--seed", "5");
        Assert.True(code == 0, stderr);
        Assert.Contains("128-d embedding", stdout, StringComparison.Ordinal);

        var manifest = EncoderManifest.Load(model);
        Assert.Equal("random-init", manifest.Provenance.Kind);
        Assert.Equal("random", manifest.Name);
        Assert.Equal(EncoderManifest.Sha256Of(Path.Combine(model, EncoderManifest.ModelFileName)), manifest.EncoderSha256);
        Assert.Equal(128, manifest.Output.Dimension);
        Assert.Equal(1_264_464, manifest.Architecture.Parameters);

        TorchSharp.torch.random.manual_seed(5);
        using var twin = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        AssertServesLikeTorchSharp(model, manifest, twin);
        Assert.Single(Directory.GetDirectories(_folder)); // no staging folder left behind
    }

    [Fact]
    public void Export_Checkpoint_ParityAndProvenance()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        OnnxTestKit.RandomizeBatchNorm(encoder, seed: 9);
        string checkpoint = Path.Combine(_folder, "ckpt");
        EncoderCheckpoint.Save(checkpoint, encoder, new CheckpointInfo("r3d50", 0.25, "pretrained", Step: 40, ConfigSha256: new string('a', 64), Data: "tiny"));
        string model = Path.Combine(_folder, "models", "pre");

        var (code, _, stderr) = Run("export", "--checkpoint", checkpoint, "--out", model, "--frames", "8", "--crop", "64", "--short-side", "72", "--crops", "3");
        Assert.True(code == 0, stderr);

        var manifest = EncoderManifest.Load(model);
        Assert.Equal(("pretrained", 40L, "tiny"), (manifest.Provenance.Kind, manifest.Provenance.Steps!.Value, manifest.Provenance.Data!));
        Assert.Equal(3, manifest.View.CropsPerClip);
        Assert.Equal(512, manifest.Output.Dimension);
        AssertServesLikeTorchSharp(model, manifest, encoder);
    }

    [Fact]
    public void Export_RunCheckpoint_ServesTheTrainingViewFromItsConfig_CommandLineOverridesMakeAnotherModelId()
    {
        // A checkpoint as the trainers write it: the encoder, checkpoint.json, and the resolved config in trainer.json.
        var config = ExperimentConfig.Load(Path.Combine(AppContext.BaseDirectory, "experiments", "cpu-tiny.json"), ["data.targetFps=12.5", "model.width=0.125"]);
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.125);
        string checkpoint = Path.Combine(_folder, "run", "checkpoints", "step-0000200");
        EncoderCheckpoint.Save(checkpoint, encoder, new CheckpointInfo("r3d18", 0.125, "pretrained", 200, config.Sha256(), "tiny",
            new ClipGeometry(config.Data.Frames, config.Data.Stride, config.Data.CropSize)));
        File.WriteAllText(Path.Combine(checkpoint, TrainerState.FileName), JsonSerializer.Serialize(new TrainerState(200, 200, config.Sha256(), config), EncoderManifest.Json));

        string served = Path.Combine(_folder, "models", "as-trained");
        var (code, _, stderr) = Run("export", "--checkpoint", Path.Combine(_folder, "run"), "--out", served);
        Assert.True(code == 0, stderr);
        var manifest = EncoderManifest.Load(served);
        var data = config.Data;
        Assert.Equal((data.Frames, data.Stride, data.ShortSide, data.CropSize, data.TargetFps),
            (manifest.View.Frames, manifest.View.Stride, manifest.View.ShortSide, manifest.View.CropSize, manifest.View.TargetFps));
        Assert.Equal(new ClipGeometry(data.Frames, data.Stride, data.CropSize, data.ShortSide, data.TargetFps), manifest.Training);

        string other = Path.Combine(_folder, "models", "other-view");
        (code, _, stderr) = Run("export", "--checkpoint", Path.Combine(_folder, "run"), "--out", other, "--frames", "4", "--crop", "48", "--fps", "none");
        Assert.True(code == 0, stderr);
        var overridden = EncoderManifest.Load(other);
        Assert.Equal((4, data.Stride, data.ShortSide, 48, (double?)null),
            (overridden.View.Frames, overridden.View.Stride, overridden.View.ShortSide, overridden.View.CropSize, overridden.View.TargetFps));
        Assert.Equal(manifest.Training, overridden.Training); // training is a record, not the view
        Assert.Equal(manifest.EncoderSha256, overridden.EncoderSha256);
        Assert.NotEqual(manifest.ModelId, overridden.ModelId);

        // Without trainer.json the short side it was trained at is unknown: asked for, not guessed.
        File.Delete(Path.Combine(checkpoint, TrainerState.FileName));
        (code, _, stderr) = Run("export", "--checkpoint", checkpoint, "--out", Path.Combine(_folder, "models", "unknown"));
        Assert.Equal(2, code);
        Assert.Contains("--short-side", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Export_OverAnExistingModel_SwapsFilesAndKeepsProbes()
    {
        string model = Path.Combine(_folder, "m");
        Assert.Equal(0, Run("init", "--arch", "r3d18", "--width", "0.25", "--out", model, "--seed", "1").Code);
        string first = EncoderManifest.Load(model).EncoderSha256;
        Directory.CreateDirectory(Path.Combine(model, "probes"));
        File.WriteAllText(Path.Combine(model, "probes", "actions.json"), "{}");

        Assert.Equal(0, Run("init", "--arch", "r3d18", "--width", "0.25", "--out", model, "--seed", "2").Code);

        Assert.NotEqual(first, EncoderManifest.Load(model).EncoderSha256);
        Assert.True(File.Exists(Path.Combine(model, "probes", "actions.json")));
        Assert.Single(Directory.GetDirectories(_folder));
    }

    [Theory]
    [InlineData("init --arch r3d7 --out x", 2, "Unknown architecture")]
    [InlineData("init --arch r3d18 --out x --colour red", 2, "Unknown option")]
    [InlineData("init --arch r3d18", 2, "--out is required")]
    [InlineData("init --arch r3d18 --out x --crop 200", 2, "does not fit")]
    [InlineData("export --checkpoint /nonexistent --out x", 1, "is not a checkpoint")]
    [InlineData("import --arch r3d18 --weights w.pth --out x", 2, "Only --arch torchvision-r3d18")]
    public void BadCommandLines_ClearMessageAndNonZeroExit(string line, int expected, string message)
    {
        var (code, _, stderr) = Run(line.Split(' '));
        Assert.Equal(expected, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    internal static (int Code, string Stdout, string Stderr) Run(params string[] args)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = Cli.RunAsync(args, output, error).GetAwaiter().GetResult();
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>ONNX Runtime, fed through the manifest's input name at the manifest's view size, matches TorchSharp.</summary>
    internal static void AssertServesLikeTorchSharp(string model, EncoderManifest manifest, R3dEncoder reference)
    {
        using var session = new InferenceSession(Path.Combine(model, EncoderManifest.ModelFileName));
        Assert.Equal(manifest.Input.Name, session.InputNames.Single());
        Assert.Equal(manifest.Output.Name, session.OutputNames.Single());
        long[] shape = [2, 3, manifest.View.Frames, manifest.View.CropSize, manifest.View.CropSize];
        float[] input = OnnxTestKit.RandomInput(shape, seed: 4);
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [manifest.Input.Name], [value], [manifest.Output.Name]);
        var parity = Parity.Compare(OnnxTestKit.TorchForward(reference, input, shape), outputs[0].GetTensorDataAsSpan<float>(), 2);
        Assert.True(parity.Passes, parity.ToString());
    }
}
