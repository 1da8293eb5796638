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
    public void Embed_OutResumedAfterATornLastLine_EachVideoOnce_EarlierLinesKept()
    {
        string model = TinyModel();
        string[] videos3 = [Path.Combine(videos.Unlabeled, "a", "video0.mp4"), Path.Combine(videos.Unlabeled, "b", "video1.mp4"), Path.Combine(videos.Unlabeled, "a", "video2.mp4")];
        string output = Path.Combine(_folder, "out", "embeddings.jsonl");
        Assert.Equal(0, ModelCommandsTests.Run(["embed", "--model", model, "--out", output, .. videos3]).Code);
        string[] first = File.ReadAllLines(output);
        Assert.Equal(3, first.Length);

        // A kill in the middle of writing the third line: two lines and half of the third remain.
        string torn = first[0] + "\n" + first[1] + "\n" + first[2][..(first[2].Length / 2)];
        File.WriteAllText(output, torn);
        var (code, _, stderr) = ModelCommandsTests.Run(["embed", "--model", model, "--out", output, .. videos3]);

        Assert.Equal(0, code);
        Assert.Contains("2 done before, 1 embedded now", stderr, StringComparison.Ordinal);
        Assert.Contains("torn", stderr, StringComparison.Ordinal);
        string[] resumed = File.ReadAllLines(output);
        Assert.Equal(3, resumed.Length);
        Assert.Equal(first[0], resumed[0]);
        Assert.Equal(first[1], resumed[1]);
        var again = JsonDocument.Parse(resumed[2]).RootElement;
        var before = JsonDocument.Parse(first[2]).RootElement;
        Assert.Equal(before.GetProperty("video").GetString(), again.GetProperty("video").GetString());
        Assert.Equal(before.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()), again.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()));
    }

    [Fact]
    public void Embed_FailedVideo_RecordedAndNotRetriedUnlessAsked()
    {
        string model = TinyModel();
        string video = Path.Combine(_folder, "later.mp4");
        File.WriteAllText(video, "not a video yet");
        string good = Path.Combine(videos.Unlabeled, "b", "video1.mp4");
        string output = Path.Combine(_folder, "failures.jsonl");

        var (code1, _, _) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, good, video);
        var failure = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).Single(l => l.GetProperty("video").GetString() == video);
        File.Copy(Path.Combine(videos.Unlabeled, "a", "video0.mp4"), video, overwrite: true);
        var (code2, _, stderr2) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, good, video);
        int linesAfterSecondRun = File.ReadAllLines(output).Length;
        var (code3, _, _) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, "--retry-failed", good, video);
        var (code4, _, stderr4) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, good, video);

        Assert.Equal(1, code1);
        Assert.False(failure.TryGetProperty("embedding", out _));
        Assert.Equal("UnsupportedMedia", failure.GetProperty("error").GetProperty("kind").GetString());
        Assert.Equal(1, code2);
        Assert.Contains("0 embedded now, 0 refused now, 0 unfinished, 1 refused before", stderr2, StringComparison.Ordinal);
        Assert.Equal(2, linesAfterSecondRun);
        Assert.Equal(0, code3);
        Assert.Equal(0, code4);
        Assert.Contains("2 done before, 0 embedded now", stderr4, StringComparison.Ordinal);
        Assert.Equal(128, File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement)
            .Single(l => l.GetProperty("video").GetString() == video && l.TryGetProperty("embedding", out _)).GetProperty("embedding").GetArrayLength());
    }

    [Fact]
    public void Embed_AFolderAndAMissingFileAmongTheVideos_RefusedAndRecorded_TheOthersEmbedded_AllowRefusedExitsZero()
    {
        string model = TinyModel();
        string folderNamedLikeAVideo = Directory.CreateDirectory(Path.Combine(_folder, "folder.mp4")).FullName;
        string missing = Path.Combine(_folder, "gone.mp4");
        string good = Path.Combine(videos.Unlabeled, "b", "video1.mp4");
        string output = Path.Combine(_folder, "refused.jsonl");

        var (code, _, stderr) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, folderNamedLikeAVideo, good, missing);
        var (allowed, _, allowedErrors) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, "--allow-refused", folderNamedLikeAVideo, good, missing);

        Assert.Equal(1, code);
        Assert.Contains("1 embedded now, 2 refused now, 0 unfinished", stderr, StringComparison.Ordinal);
        var lines = File.ReadAllLines(output).Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(l => l.GetProperty("video").GetString()!);
        Assert.Equal(3, lines.Count);
        Assert.True(lines[good].TryGetProperty("embedding", out _));
        Assert.True(lines[folderNamedLikeAVideo].TryGetProperty("error", out _));
        Assert.True(lines[missing].TryGetProperty("error", out _));
        Assert.True(allowed == 0, allowedErrors);
        Assert.Contains("1 done before, 0 embedded now, 0 refused now, 0 unfinished, 2 refused before", allowedErrors, StringComparison.Ordinal);
    }

    [Fact]
    public void Embed_ErrorLineThatIsNoRefusal_TheVideoIsTriedAgain()
    {
        // Earlier versions wrote every failure, those that may pass too (a server given up on): such a line,
        // without "refused", must not keep the video from being embedded.
        string model = TinyModel();
        string good = Path.Combine(videos.Unlabeled, "b", "video1.mp4");
        string output = Path.Combine(_folder, "old.jsonl");
        string modelId = EncoderManifest.Load(model).ModelId;
        File.WriteAllText(output, $$$"""{"video":"{{{good}}}","modelId":"{{{modelId}}}","error":{"kind":"urn:cvrlserve:problem:unavailable","message":"Gave up after 5 attempts"}}""" + "\n");

        var (code, _, stderr) = ModelCommandsTests.Run("embed", "--model", model, "--out", output, good);

        Assert.True(code == 0, stderr);
        Assert.Contains("0 done before, 1 embedded now", stderr, StringComparison.Ordinal);
        Assert.True(JsonDocument.Parse(File.ReadAllLines(output)[1]).RootElement.TryGetProperty("embedding", out _));
    }

    [Fact]
    public void Embed_TwoShardsOfAFolder_EmbedEveryVideoOnce()
    {
        string model = TinyModel();
        string out0 = Path.Combine(_folder, "shard-0.jsonl");
        string out1 = Path.Combine(_folder, "shard-1.jsonl");
        string outPattern = Path.Combine(_folder, "shard-{shard}.jsonl");

        var (code0, _, _) = ModelCommandsTests.Run("embed", "--model", model, "--folder", videos.Unlabeled, "--shard", "0/2", "--out", outPattern, "--concurrency", "2");
        var (code1, _, _) = ModelCommandsTests.Run("embed", "--model", model, "--folder", videos.Unlabeled, "--shard", "1/2", "--out", outPattern);

        Assert.Equal(0, code0);
        Assert.Equal(0, code1);
        var keys0 = File.ReadAllLines(out0).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("video").GetString()!).ToArray();
        var keys1 = File.ReadAllLines(out1).Select(l => JsonDocument.Parse(l).RootElement.GetProperty("video").GetString()!).ToArray();
        var expected = Directory.EnumerateFiles(videos.Unlabeled, "*.mp4", SearchOption.AllDirectories)
            .Select(f => Path.GetRelativePath(videos.Unlabeled, f).Replace('\\', '/')).Order(StringComparer.Ordinal).ToArray();
        Assert.NotEmpty(keys0);
        Assert.NotEmpty(keys1);
        Assert.Empty(keys0.Intersect(keys1));
        Assert.Equal(expected, keys0.Concat(keys1).Order(StringComparer.Ordinal));
    }

    [Theory]
    [InlineData("--shard", "2/2")]
    [InlineData("--concurrency", "0")]
    [InlineData("--server", "ftp://example")]
    public void Embed_BadOptions_UsageErrorExitTwo(string option, string value)
    {
        var (code, _, stderr) = ModelCommandsTests.Run("embed", "--model", Path.Combine(_folder, "m"), option, value, "x.mp4");

        Assert.Equal(2, code);
        Assert.StartsWith("cvrl: ", stderr, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("--model", "m", "--library")]
    [InlineData("--server", "http://127.0.0.1:9", "--tags", "a")]
    [InlineData("--server", "http://127.0.0.1:9", "--library", "--tags", "a b")]
    [InlineData("--server", "http://127.0.0.1:9", "--library", "--tags", "a,%")]
    [InlineData("--server", "http://127.0.0.1:9", "--library", "--per-clip")]
    public void Embed_LibraryOptionsMisused_UsageErrorExitTwoBeforeAnyRequest(params string[] options)
    {
        // Port 9 (discard) on loopback: a request would fail with a network error (exit 1), not a usage error.
        var (code, _, stderr) = ModelCommandsTests.Run(["embed", .. options, "x.mp4"]);

        Assert.Equal(2, code);
        Assert.StartsWith("cvrl: ", stderr, StringComparison.Ordinal);
        Assert.DoesNotContain("request(s) to", stderr, StringComparison.Ordinal);
    }

    private string TinyModel()
    {
        string model = Path.Combine(_folder, "m");
        if (!File.Exists(Path.Combine(model, "encoder.onnx")))
        {
            Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.25", "--out", model, "--frames", "4", "--short-side", "40", "--crop", "32", "--clips", "3").Code);
        }

        return model;
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
