using System.Text.Json;
using CvrlServe.Core.Inference;

namespace CvrlServe.Training.Tests.Commands;

[Collection(SharedTrainingVideos.Name)]
public sealed class EmbedCommandTests(TrainingVideos videos) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-embedcmd-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void Embed_TwoVideosAndABadOne_TwoJsonLinesAMessageAndExitOne()
    {
        string model = Path.Combine(_folder, "m");
        Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.25", "--out", model, "--frames", "4", "--short-side", "40", "--crop", "32", "--clips", "3").Code);
        string bad = Path.Combine(_folder, "notes.mp4");
        File.WriteAllText(bad, "not a video");
        string good1 = Path.Combine(videos.Unlabeled, "a", "video0.mp4");
        string good2 = Path.Combine(videos.Unlabeled, "b", "video1.mp4");

        var (code, stdout, stderr) = ModelCommandsTests.Run("embed", "--model", model, "--per-clip", good1, bad, good2);

        Assert.Equal(1, code);
        Assert.Contains("notes.mp4", stderr, StringComparison.Ordinal);
        var lines = stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.Equal([good1, good2], lines.Select(l => l.GetProperty("video").GetString()));
        var first = lines[0];
        Assert.Equal(EncoderManifest.Load(model).ModelId, first.GetProperty("modelId").GetString());
        Assert.False(first.TryGetProperty("encoderSha256", out _)); // the file hash alone does not name the space
        Assert.Equal(128, first.GetProperty("embedding").GetArrayLength());
        Assert.Equal(3, first.GetProperty("clips").GetArrayLength());
        Assert.True(first.GetProperty("clips")[2].GetProperty("startSeconds").GetDouble() > 0);
        Assert.True(first.GetProperty("timingsMs").GetProperty("decode").GetDouble() > 0);
    }

    [Fact]
    public void Embed_MissingModel_ExitOneWithMessage()
    {
        var (code, _, stderr) = ModelCommandsTests.Run("embed", "--model", Path.Combine(_folder, "none"), "x.mp4");
        Assert.Equal(1, code);
        Assert.Contains("Model 'none'", stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void CommittedCoreTestModels_AreExactlyWhatCvrlInitMakes()
    {
        string repo = AppContext.BaseDirectory;
        while (!File.Exists(Path.Combine(repo, "CvrlServe.sln")))
        {
            repo = Path.GetDirectoryName(repo)!;
        }

        foreach (int seed in new[] { 1, 2 })
        {
            string made = Path.Combine(_folder, $"seed{seed}");
            Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.125", "--seed", $"{seed}", "--frames", "4", "--stride", "2",
                "--short-side", "40", "--crop", "32", "--clips", "2", "--out", made).Code);
            var committed = EncoderManifest.Load(Path.Combine(repo, "tests", "CvrlServe.Core.Tests", "Models", $"tiny-seed{seed}"));
            Assert.Equal(committed.EncoderSha256, EncoderManifest.Load(made).EncoderSha256);
        }
    }
}
