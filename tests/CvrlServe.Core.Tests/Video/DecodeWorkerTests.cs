using System.Diagnostics;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// The decode worker as a process: its sandbox (limits, no new privileges, only its pipes), what a
/// request gets when its worker dies, and the reader's fallback to the command line when the worker is
/// missing or refuses to start.
/// </summary>
[Collection(SharedVideos.Name)]
public sealed class DecodeWorkerTests(TestVideos videos)
{
    [Fact]
    public async Task Worker_RunsWithItsLimits_NoNewPrivileges_AndOnlyItsPipes()
    {
        var limits = new DecodeWorkerLimits { AddressSpaceBytes = 3L << 30, CpuSeconds = 321, OpenFiles = 48 };
        var before = ChildProcesses.Workers();
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker, DecodeWorkerLimits = limits });
        await reader.GetMediaInfoAsync(videos.Path("index.mp4"));
        int pid = Assert.Single(ChildProcesses.Workers().Except(before));

        string proc = File.ReadAllText($"/proc/{pid}/limits");
        Assert.Matches(@"Max address space\s+3221225472\s+3221225472", proc);
        // The CPU limit is moved before each request to what was used plus the request's budget.
        var cpu = System.Text.RegularExpressions.Regex.Match(proc, @"Max cpu time\s+(\d+)\s+unlimited");
        Assert.True(cpu.Success, proc);
        Assert.InRange(int.Parse(cpu.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture), 322, 330);
        Assert.Matches(@"Max open files\s+48\s+48", proc);
        Assert.Contains("NoNewPrivs:\t1", File.ReadAllText($"/proc/{pid}/status"));
        // Idle between requests: stdin, stdout, stderr, and nothing else (the probed file is closed).
        var open = ChildProcesses.OpenFiles(pid);
        Assert.Equal(3, open.Count);
        Assert.All(open, target => Assert.StartsWith("pipe:", target));
    }

    [Fact]
    public async Task MalformedGraphs_FailTheirRequest_TheWorkerSurvivesOrIsReplaced()
    {
        using var pool = new DecodeWorkerPool(DecodeWorkerPool.Locate()!);
        Assert.True(await pool.CheckAsync(), pool.Unavailable);
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Cli });
        var media = await reader.GetMediaInfoAsync(videos.Path("index.mp4"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 1);
        var good = DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: false);
        var buffer = new byte[good.ExpectedBytes];

        // A filter that does not exist, an input that does not exist, a crop larger than the frame.
        foreach (string graph in new[] { "[0:v]nosuchfilter[out]", "[5:v]null[out]", "[0:v]crop=640:480:0:0,format=rgb24[out]" })
        {
            var bad = good with { FilterGraph = graph };
            var answer = await pool.DecodeAsync(bad, buffer, TimeSpan.FromSeconds(30), CancellationToken.None);
            Assert.NotNull(answer);
            Assert.True(answer.Status < 0 && answer.Produced == 0, $"{graph}: status {answer.Status}, {answer.Produced} bytes");
        }

        var fine = await pool.DecodeAsync(good, buffer, TimeSpan.FromSeconds(30), CancellationToken.None);
        Assert.Equal((0, good.ExpectedBytes), (fine!.Status, fine.Produced));
    }

    [Fact]
    public async Task DamagedH264_DecodedByFrameThreadsThatAllLogErrors_NoWorkerCrashes()
    {
        // Bytes flipped all through the picture data of a 720p h264 file: every decoder thread logs errors at once.
        string damaged = Path.Combine(videos.Folder, "damaged-720p.mp4");
        string source = Path.Combine(videos.Folder, "source-720p.mp4");
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=1280x720:r=25 -t 4 -c:v libx264 -preset ultrafast -g 25 -pix_fmt yuv420p \"{source}\"");
        byte[] bytes = await File.ReadAllBytesAsync(source);
        var random = new Random(13);
        for (int i = bytes.Length / 10; i < bytes.Length - 1024; i += 97)
        {
            bytes[i] ^= (byte)random.Next(1, 256);
        }

        await File.WriteAllBytesAsync(damaged, bytes);
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
        var outcomes = new List<string>();
        for (int round = 0; round < 4; round++)
        {
            try
            {
                var media = await reader.GetMediaInfoAsync(damaged);
                var video = await reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 1), 4), new FrameGeometry(64));
                outcomes.Add($"decoded, {video.Stats.FilledTailFrames} filled");
            }
            catch (CvrlException e)
            {
                outcomes.Add($"{e.GetType().Name}: {e.Message}");
                Assert.DoesNotContain("decode worker", e.Detail ?? "", StringComparison.Ordinal);
            }
        }

        Assert.True(reader.UsesWorker, reader.DecodeBackend);
        Assert.Equal(4, outcomes.Count);
    }

    [Fact]
    public async Task WorkerKilledMidDecode_ThatRequestFailsTyped_TheNextIsServedByANewWorker()
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
        var media = await reader.GetMediaInfoAsync(videos.Path("moving-320x240-20s.mp4"));
        var all = new SamplingPlan(media.Grid(), [new ClipPlan(Enumerable.Range(0, 500).ToArray())]);
        var decode = reader.DecodeAsync(media, all, FrameGeometry.FullFrame);
        await Poll.UntilAsync(() => ChildProcesses.Decoders(videos.Folder).Count > 0, TimeSpan.FromSeconds(10));
        int pid = ChildProcesses.Decoders(videos.Folder)[0];
        Process.GetProcessById(pid).Kill();

        var error = await Assert.ThrowsAsync<CorruptVideoException>(() => decode);
        Assert.Contains(error.StderrTail, l => l.Contains("killed by signal 9", StringComparison.Ordinal));
        var index = await reader.GetMediaInfoAsync(videos.Path("index.mp4"));
        var plan = SamplingPlan.Evaluation(index.Grid(), new ClipSpec(4, 2), 3);
        var video = await reader.DecodeAsync(index, plan, FrameGeometry.FullFrame);
        Assert.Equal(plan.Clips.Select(c => c.Frames), video.Views.Select(v => v.Frames));
        Assert.True(reader.UsesWorker);
        Assert.DoesNotContain(pid, ChildProcesses.Workers());
    }

    [Fact]
    public async Task WorkerBuiltForAnotherLibav_RefusesToStart_TheReaderUsesTheCommandLineAndSaysWhy()
    {
        // The worker's own source built as if for another libav major (make stub): it compiles to a stub
        // that only says so, as it would in an image whose libav it was not tested with.
        string output = Path.Combine(videos.Folder, "stub-worker");
        var make = await ToolProcess.RunAsync("make", ["-s", "-C", Path.Combine(Repository.Root, "src", "decode-worker"), "stub", $"OUT={output}"],
            null, TimeSpan.FromMinutes(2), "Building the stub worker");
        Assert.True(make.ExitCode == 0, string.Join('\n', make.StderrTail));
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker, DecodeWorkerPath = Path.Combine(output, "cvrl-decode-worker-stub") });

        string backend = await reader.CheckDecoderAsync();
        var media = await reader.GetMediaInfoAsync(videos.Path("index.mkv"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 2);
        var video = await reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        Assert.False(reader.UsesWorker);
        Assert.StartsWith("cli (the decode worker refused to start: built against libavformat ", backend, StringComparison.Ordinal);
        Assert.Contains("only tested there", backend, StringComparison.Ordinal);
        Assert.Equal(plan.Clips.Select(c => c.Frames), video.Views.Select(v => v.Frames));
    }

    [Fact]
    public async Task Nvdec_DecodesOnTheGpuOrFallsBackToSoftwareAndSaysWhy()
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker, DecodeWorkerLimits = new DecodeWorkerLimits { Nvdec = true } });
        using var cli = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Cli });
        var h264 = await reader.GetMediaInfoAsync(videos.Path("index.mp4"));
        var plan = SamplingPlan.Evaluation(h264.Grid(), new ClipSpec(4, 2), 3);

        var video = await reader.DecodeAsync(h264, plan, FrameGeometry.FullFrame);

        // Whichever decoder served, the pictures are the planned frames (index videos carry their number).
        Assert.Equal(plan.Clips.Select(c => c.Frames), video.Views.Select(v => v.Frames.Select((_, t) => TestVideos.FrameIndexOf(v.Frame(t)[0]))));
        var use = Assert.NotNull(reader.NvdecUse);
        Assert.Equal(1, use.Nvdec + use.Software);
        if (use.Software == 1)
        {
            // No NVDEC here (no GPU, no driver): the software decoder served, said why, and gave the command line's bytes.
            Assert.StartsWith("software (h264_cuvid did not open: ", use.LastSoftwareReason, StringComparison.Ordinal);
            var reference = await cli.DecodeAsync(h264, plan, FrameGeometry.FullFrame);
            Assert.True(video.Views.Zip(reference.Views).All(p => p.First.Rgb.AsSpan().SequenceEqual(p.Second.Rgb)));
        }

        // A codec NVDEC is not asked for here is decoded in software, and the reader says so.
        var vp9 = await reader.GetMediaInfoAsync(videos.Path("index.webm"));
        await reader.DecodeAsync(vp9, SamplingPlan.Evaluation(vp9.Grid(), new ClipSpec(4, 2), 1), FrameGeometry.FullFrame);
        Assert.Equal("software (no NVDEC decoder for vp9)", reader.NvdecUse?.LastSoftwareReason);

        // NVDEC workers have no address-space limit (CUDA reserves huge ranges); their resident memory is watched instead.
        int pid = Assert.Single(ChildProcesses.Workers(), p => File.ReadAllText($"/proc/{p}/cmdline").Contains("--nvdec", StringComparison.Ordinal));
        Assert.Matches(@"Max address space\s+unlimited", File.ReadAllText($"/proc/{pid}/limits"));
    }

    [Fact]
    public async Task NvdecWorkerPastItsResidentMemoryLimit_IsKilled_TheRequestFailsTyped()
    {
        using var plain = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
        var media = await plain.GetMediaInfoAsync(videos.Path("moving-320x240-20s.mp4"));
        using var reader = new VideoReader(new VideoReaderOptions
        {
            DecodePath = DecodePath.Worker,
            DecodeWorkerLimits = new DecodeWorkerLimits { Nvdec = true, MaxResidentBytes = 1L << 20 },
        });

        var error = await Assert.ThrowsAsync<CorruptVideoException>(() =>
            reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 2), 2), FrameGeometry.FullFrame));

        Assert.Contains(error.StderrTail, l => l.Contains("resident memory", StringComparison.Ordinal));
    }

    [Theory]
    [InlineData(DecodePath.Cli)]
    [InlineData(DecodePath.Worker)]
    public async Task ACodecOffTheDecoderAllowlist_IsRefusedAsUnsupported_BothWays(DecodePath path)
    {
        // FFV1 in Matroska: an accepted container, a decoder that is not on the default allowlist.
        string ffv1 = Path.Combine(videos.Folder, $"ffv1-{path}.mkv");
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 10 -c:v ffv1 \"{ffv1}\"");
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = path });
        using var open = new VideoReader(new VideoReaderOptions { DecodePath = path, AllowedDecoders = [.. VideoReaderOptions.DefaultAllowedDecoders, "ffv1"] });

        var refused = await Assert.ThrowsAsync<UnsupportedMediaException>(() => reader.GetMediaInfoAsync(ffv1));
        var media = await open.GetMediaInfoAsync(ffv1);
        var video = await open.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 1), FrameGeometry.FullFrame);

        Assert.Contains("codec that is not accepted", refused.Message, StringComparison.Ordinal);
        Assert.Contains(refused.StderrTail, l => l.Contains("Codec (ffv1) not on whitelist", StringComparison.Ordinal));
        Assert.Equal(("ffv1", 1), (media.Codec, video.Views.Count));
    }

    [Fact]
    public async Task NoWorkerBinary_TheReaderUsesTheCommandLine()
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodeWorkerPath = Path.Combine(videos.Folder, "no-such-worker") });

        var media = await reader.GetMediaInfoAsync(videos.Path("index.webm"));

        Assert.Equal(TestVideos.IndexFrames, media.Grid().Count);
        Assert.False(reader.UsesWorker);
        Assert.StartsWith("cli (the decode worker", reader.DecodeBackend, StringComparison.Ordinal);
    }
}
