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
        Assert.Matches(@"Max cpu time\s+321\s+326", proc);
        Assert.Matches(@"Max open files\s+48\s+48", proc);
        Assert.Contains("NoNewPrivs:\t1", File.ReadAllText($"/proc/{pid}/status"));
        // Idle between requests: stdin, stdout, stderr, and nothing else (the probed file is closed).
        var open = ChildProcesses.OpenFiles(pid);
        Assert.Equal(3, open.Count);
        Assert.All(open, target => Assert.StartsWith("pipe:", target));
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
    public async Task WorkerThatRefusesToStart_TheReaderUsesTheCommandLineAndSaysWhy()
    {
        // A stand-in that answers the hello as a worker built for another libav would.
        string fake = Path.Combine(videos.Folder, "refusing-worker.sh");
        string message = "libavformat 61 is installed; this worker was built and tested against major 59";
        await File.WriteAllTextAsync(fake, $"""
            #!/bin/sh
            printf 'H'; printf '\{ToOctal(29 + message.Length)}\000\000\000'
            printf '\001\000\000\000'
            for i in 1 2 3 4 5; do printf '\000\000\075\000'; done
            printf '\000'; printf '\{ToOctal(message.Length)}\000\000\000'; printf '%s' '{message}'
            """.Replace("\r", "", StringComparison.Ordinal));
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(fake, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        }

        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker, DecodeWorkerPath = fake });

        string backend = await reader.CheckDecoderAsync();
        var media = await reader.GetMediaInfoAsync(videos.Path("index.mkv"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 2);
        var video = await reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        Assert.False(reader.UsesWorker);
        Assert.StartsWith("cli (", backend, StringComparison.Ordinal);
        Assert.Contains(message, backend, StringComparison.Ordinal);
        Assert.Equal(plan.Clips.Select(c => c.Frames), video.Views.Select(v => v.Frames));
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

    private static string ToOctal(int value) => Convert.ToString(value, 8).PadLeft(3, '0');
}
