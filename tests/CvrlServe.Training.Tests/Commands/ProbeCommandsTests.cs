using System.Text.Json;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Commands;

[Collection(SharedTrainingVideos.Name)]
public sealed class ProbeCommandsTests(TrainingVideos videos, ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-probecmd-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    private string Model(string name, int seed)
    {
        string model = Path.Combine(_folder, name);
        Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.25", "--seed", $"{seed}", "--out", model,
            "--frames", "4", "--short-side", "40", "--crop", "32", "--clips", "2", "--crops", "3").Code);
        return model;
    }

    [Fact]
    public async Task TrainEvalClassify_OnLabelledVideos_EndToEnd()
    {
        string model = Model("m", 1);
        string cache = Path.Combine(_folder, "features");
        var (code, stdout, stderr) = ModelCommandsTests.Run("probe", "train", "--model", model, "--data", videos.Labelled, "--name", "motion",
            "--clips-per-video", "3", "--flip", "off", "--features-cache", cache, "--cpu");
        output.WriteLine(stdout);
        Assert.True(code == 0, stderr);
        Assert.Contains("<- chosen", stdout, StringComparison.Ordinal);
        int cached = Directory.GetFiles(cache).Length;
        Assert.Equal(12, cached);

        var manifest = EncoderManifest.Load(model);
        var record = (await new ProbeStore(model).LoadAsync("motion", manifest)).Metadata;
        Assert.Equal(manifest.ModelId, record.ModelId);
        Assert.Equal(["down", "pulse", "right"], record.Classes);
        Assert.Equal(36, record.TrainingExamples);
        Assert.NotNull(record.DataFingerprint);
        Assert.Null(record.Preset);
        Assert.Equal(manifest.View, record.View);
        Assert.Equal(new ProbeFeatureOptions { ClipsPerVideo = 3, Flip = false }, record.Features);

        // Retraining reuses the cached features: no new feature files.
        Assert.Equal(0, ModelCommandsTests.Run("probe", "train", "--model", model, "--data", videos.Labelled, "--name", "motion2",
            "--clips-per-video", "3", "--flip", "off", "--features-cache", cache, "--cpu").Code);
        Assert.Equal(cached, Directory.GetFiles(cache).Length);

        string json = Path.Combine(_folder, "metrics.json");
        string png = Path.Combine(_folder, "confusion.png");
        (code, stdout, stderr) = ModelCommandsTests.Run("probe", "eval", "--model", model, "--probe", "motion", "--data", videos.Labelled,
            "--json", json, "--confusion", png, "--features-cache", cache, "--cpu");
        output.WriteLine(stdout);
        Assert.True(code == 0, stderr);
        Assert.Contains("views", stderr, StringComparison.Ordinal); // the cost estimate comes first
        var report = JsonDocument.Parse(File.ReadAllText(json)).RootElement;
        var metrics = report.GetProperty("metrics");
        Assert.Equal(12, metrics.GetProperty("examples").GetInt32());
        var settings = report.GetProperty("settings");
        Assert.Equal(manifest.ModelId, settings.GetProperty("modelId").GetString());
        Assert.Equal(JsonValueKind.Null, settings.GetProperty("preset").ValueKind);
        Assert.Equal(2, settings.GetProperty("view").GetProperty("clips").GetInt32());
        Assert.Equal(3, settings.GetProperty("clipsPerVideo").GetInt32());
        Assert.False(settings.GetProperty("flip").GetBoolean());
        Assert.Equal(0, settings.GetProperty("seed").GetInt32());
        Assert.False(settings.GetProperty("singleFrame").GetBoolean());
        Assert.Equal(32, settings.GetProperty("trainCrop").GetInt32());
        Assert.InRange(metrics.GetProperty("top1").GetDouble(), 0.5, 1.0); // random features, but 3 distinct motions
        Assert.True(new FileInfo(png).Length > 1000);

        (code, stdout, _) = ModelCommandsTests.Run("classify", "--model", model, "--probe", "motion", "--top", "2", "--cpu", Path.Combine(videos.Labelled, "pulse", "p0.mp4"));
        Assert.Equal(0, code);
        var line = JsonDocument.Parse(stdout).RootElement;
        Assert.Equal(2, line.GetProperty("classes").GetArrayLength());
        Assert.Equal(manifest.ModelId, line.GetProperty("modelId").GetString());
    }

    [Fact]
    public void Classify_ProbeOfAnotherEncoder_Refused()
    {
        string a = Model("a", 1);
        string b = Model("b", 2);
        Assert.Equal(0, ModelCommandsTests.Run("probe", "train", "--model", a, "--data", videos.Labelled, "--name", "p", "--features-cache", Path.Combine(_folder, "f"), "--cpu").Code);
        Directory.CreateDirectory(Path.Combine(b, "probes"));
        foreach (string file in Directory.GetFiles(Path.Combine(a, "probes")))
        {
            File.Copy(file, Path.Combine(b, "probes", Path.GetFileName(file)));
        }

        var (code, _, stderr) = ModelCommandsTests.Run("classify", "--model", b, "--probe", "p", "--cpu", Path.Combine(videos.Labelled, "pulse", "p0.mp4"));
        Assert.Equal(1, code);
        Assert.Contains("Retrain the probe", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void Classify_ProbeOfTheSameEncoderExportedWithAnotherView_Refused()
    {
        string a = Model("a", 1);
        string wider = Path.Combine(_folder, "wider");
        Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.25", "--seed", "1", "--out", wider,
            "--frames", "4", "--short-side", "48", "--crop", "32", "--clips", "2", "--crops", "3").Code);
        Assert.Equal(EncoderManifest.Load(a).EncoderSha256, EncoderManifest.Load(wider).EncoderSha256); // the same encoder.onnx
        Assert.Equal(0, ModelCommandsTests.Run("probe", "train", "--model", a, "--data", videos.Labelled, "--name", "p", "--features-cache", Path.Combine(_folder, "f"), "--cpu").Code);
        Directory.CreateDirectory(Path.Combine(wider, "probes"));
        foreach (string file in Directory.GetFiles(Path.Combine(a, "probes")))
        {
            File.Copy(file, Path.Combine(wider, "probes", Path.GetFileName(file)));
        }

        var (code, _, stderr) = ModelCommandsTests.Run("classify", "--model", wider, "--probe", "p", "--cpu", Path.Combine(videos.Labelled, "pulse", "p0.mp4"));
        Assert.Equal(1, code);
        Assert.Contains("Retrain the probe", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void ProbeTrain_BadName_RefusedBeforeAnyFeatureIsComputed()
    {
        string model = Model("m", 1);
        string cache = Path.Combine(_folder, "features");
        var (code, _, stderr) = ModelCommandsTests.Run("probe", "train", "--model", model, "--data", videos.Labelled, "--name", "../escape", "--features-cache", cache, "--cpu");
        Assert.Equal(1, code);
        Assert.Contains("is not a valid probe name", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(cache) && Directory.EnumerateFiles(cache).Any());
    }

    [Fact]
    public void ProbeTrain_MalformedSplitList_LineNumberedError()
    {
        string model = Model("m", 1);
        File.WriteAllText(Path.Combine(_folder, "classInd.txt"), "1 right\n2 down\n");
        string list = Path.Combine(_folder, "trainlist01.txt");
        File.WriteAllText(list, "right/r0.mp4 1\nright/r1.mp4 7\ndown/missing.mp4 2\n");
        var (code, _, stderr) = ModelCommandsTests.Run("probe", "train", "--model", model, "--data", list, "--name", "x", "--cpu");
        Assert.Equal(1, code);
        Assert.Contains("trainlist01.txt:1: missing file", stderr, StringComparison.Ordinal); // relative to the list's folder
        Assert.Contains("trainlist01.txt:2: unknown label '#7'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public async Task ProbeTrainEval_PresetSmall_RecordedInTheProbeAndTheReport_OtherViewsRefused()
    {
        string model = Model("m", 1); // its manifest: 4 frames, short side 40, 2 clips x 3 crops of 32
        string data = Path.Combine(_folder, "few.csv");
        File.WriteAllLines(data, ["right/r0.mp4,right", "right/r1.mp4,right", "down/d0.mp4,down", "down/d1.mp4,down"]);
        File.Copy(Path.Combine(videos.Labelled, "right", "r0.mp4"), Path.Combine(Directory.CreateDirectory(Path.Combine(_folder, "right")).FullName, "r0.mp4"));
        File.Copy(Path.Combine(videos.Labelled, "right", "r1.mp4"), Path.Combine(_folder, "right", "r1.mp4"));
        File.Copy(Path.Combine(videos.Labelled, "down", "d0.mp4"), Path.Combine(Directory.CreateDirectory(Path.Combine(_folder, "down")).FullName, "d0.mp4"));
        File.Copy(Path.Combine(videos.Labelled, "down", "d1.mp4"), Path.Combine(_folder, "down", "d1.mp4"));
        string cache = Path.Combine(_folder, "features");
        var (code, stdout, stderr) = ModelCommandsTests.Run("probe", "train", "--model", model, "--data", data, "--name", "small",
            "--preset", "small", "--clips-per-video", "1", "--features-cache", cache, "--cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("preset 'small'", stdout, StringComparison.Ordinal);

        var manifest = EncoderManifest.Load(model);
        var space = ProbeFeatures.SpaceOf(manifest, EvaluationPresets.Small.View);
        Assert.NotEqual(manifest.ModelId, space.ModelId);
        var record = (await new ProbeStore(model).LoadAsync("small", space)).Metadata;
        Assert.Equal(("small", EvaluationPresets.Small.View, space.ModelId), (record.Preset, record.View, record.ModelId));
        Assert.Equal(112, EvaluationPresets.Small.TrainCrop);
        Assert.Equal(112, record.Features!.TrainCrop);

        // Served with the manifest's view, or evaluated without the preset, it is another space: refused, naming the preset.
        (code, _, stderr) = ModelCommandsTests.Run("classify", "--model", model, "--probe", "small", "--cpu", Path.Combine(_folder, "right", "r0.mp4"));
        Assert.Equal(1, code);
        Assert.Contains("preset 'small'", stderr, StringComparison.Ordinal);
        (code, _, stderr) = ModelCommandsTests.Run("probe", "eval", "--model", model, "--probe", "small", "--data", data, "--features-cache", cache, "--cpu");
        Assert.Equal(1, code);
        Assert.Contains("preset 'small'", stderr, StringComparison.Ordinal);

        string json = Path.Combine(_folder, "small.json");
        (code, stdout, stderr) = ModelCommandsTests.Run("probe", "eval", "--model", model, "--probe", "small", "--data", data, "--preset", "small", "--json", json, "--features-cache", cache, "--cpu");
        Assert.True(code == 0, stderr);
        Assert.Contains("4 clips x 3 crops of 112", stderr, StringComparison.Ordinal);
        var settings = JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("settings");
        Assert.Equal("small", settings.GetProperty("preset").GetString());
        Assert.Equal(space.ModelId, settings.GetProperty("modelId").GetString());
        Assert.Equal(128, settings.GetProperty("view").GetProperty("shortSide").GetInt32());
        Assert.Equal("threeAlongLongSide", settings.GetProperty("view").GetProperty("cropMode").GetString());
        Assert.Equal(1, settings.GetProperty("clipsPerVideo").GetInt32());
    }

    [Fact]
    public void ProbeEval_SingleFrameProbeWithoutTheFlag_Refused_WithTheFlag_Runs()
    {
        string model = Model("m", 1);
        string cache = Path.Combine(_folder, "features");
        Assert.Equal(0, ModelCommandsTests.Run("probe", "train", "--model", model, "--data", videos.Labelled, "--name", "still", "--single-frame",
            "--clips-per-video", "1", "--features-cache", cache, "--cpu").Code);
        var (code, _, stderr) = ModelCommandsTests.Run("probe", "eval", "--model", model, "--probe", "still", "--data", videos.Labelled, "--features-cache", cache, "--cpu");
        Assert.Equal(2, code);
        Assert.Contains("--single-frame", stderr, StringComparison.Ordinal);
        string json = Path.Combine(_folder, "still.json");
        (code, _, stderr) = ModelCommandsTests.Run("probe", "eval", "--model", model, "--probe", "still", "--data", videos.Labelled, "--single-frame", "--json", json, "--features-cache", cache, "--cpu");
        Assert.True(code == 0, stderr);
        Assert.True(JsonDocument.Parse(File.ReadAllText(json)).RootElement.GetProperty("settings").GetProperty("singleFrame").GetBoolean());
    }
}
