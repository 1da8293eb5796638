using System.Net;
using System.Net.Sockets;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

[Collection(SharedVideos.Name)]
public sealed class VideoReaderSafetyTests(TestVideos videos)
{
    [Theory]
    [InlineData("empty.mp4")]
    [InlineData("text.mp4")]
    public async Task GetMediaInfoAsync_NotAVideo_Unsupported(string name)
    {
        using var reader = new VideoReader();
        await Assert.ThrowsAsync<UnsupportedMediaException>(() => reader.GetMediaInfoAsync(videos.Path(name)));
    }

    [Fact]
    public async Task GetMediaInfoAsync_TruncatedMp4_CorruptWithStderrTail()
    {
        using var reader = new VideoReader();
        var error = await Assert.ThrowsAsync<CorruptVideoException>(() => reader.GetMediaInfoAsync(videos.Path("truncated.mp4")));
        Assert.Contains(error.StderrTail, l => l.Contains("moov atom not found", StringComparison.Ordinal));
    }

    [Fact]
    public async Task GetMediaInfoAsync_MissingFile_VideoNotFound()
    {
        using var reader = new VideoReader();
        var error = await Assert.ThrowsAsync<VideoNotFoundException>(() => reader.GetMediaInfoAsync(videos.Path("no-such-file.mp4")));
        Assert.Equal(ErrorKind.NotFound, error.Kind);
        Assert.DoesNotContain(videos.Folder, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task GetMediaInfoAsync_HlsPlaylistRenamedMp4_RefusedWithoutOpeningItsUrls()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        int port = ((IPEndPoint)listener.LocalEndpoint).Port;
        string playlist = Path.Combine(videos.Folder, "playlist.mp4");
        File.WriteAllText(playlist,
            $"#EXTM3U\n#EXT-X-TARGETDURATION:2\n#EXTINF:1.2,\nhttp://127.0.0.1:{port}/segment.ts\n#EXTINF:1.2,\nindex.mp4\n#EXT-X-ENDLIST\n");
        using var reader = new VideoReader();

        var error = await Assert.ThrowsAsync<UnsupportedMediaException>(() => reader.GetMediaInfoAsync(playlist));

        Assert.Contains(error.StderrTail, l => l.Contains("not on whitelist", StringComparison.Ordinal));
        // ffprobe has exited and been reaped when the call returns: a connection it made would be pending now.
        Assert.False(listener.Pending(), "ffprobe connected to the URL in the playlist");
    }

    [Fact]
    public async Task GetMediaInfoAsync_FfconcatRenamedMp4_RefusedAlthoughItsTargetIsAVideo()
    {
        string list = Path.Combine(videos.Folder, "concat-list.mp4");
        File.WriteAllText(list, "ffconcat version 1.0\nfile index.mp4\nfile solid.mp4\n");
        using var reader = new VideoReader();
        await Assert.ThrowsAsync<UnsupportedMediaException>(() => reader.GetMediaInfoAsync(list));
    }

    [Fact]
    public async Task GetMediaInfoAsync_SameFileTwice_SecondComesFromCache()
    {
        using var reader = new VideoReader();
        var first = await reader.GetMediaInfoAsync(videos.Path("index.mkv"));
        var second = await reader.GetMediaInfoAsync(videos.Path("index.mkv"));
        Assert.Same(first, second); // the same instance: no second ffprobe run
    }

    [Fact]
    public async Task Limits_FileSizeDurationPixelsDecodedBytes_EachRefusedBeforeDecoding()
    {
        using var reader = new VideoReader();
        string path = videos.Path("odd-321x241.mp4");

        var size = await Assert.ThrowsAsync<LimitExceededException>(() => reader.GetMediaInfoAsync(path, new VideoLimits { MaxFileBytes = 100 }));
        Assert.Equal(Limit.FileSize, size.Limit);
        var duration = await Assert.ThrowsAsync<LimitExceededException>(() => reader.GetMediaInfoAsync(path, new VideoLimits { MaxDuration = TimeSpan.FromSeconds(0.1) }));
        Assert.Equal(Limit.Duration, duration.Limit);
        var pixels = await Assert.ThrowsAsync<LimitExceededException>(() => reader.GetMediaInfoAsync(path, new VideoLimits { MaxPixelsPerFrame = 320 * 240 }));
        Assert.Equal(Limit.PixelsPerFrame, pixels.Limit);

        var media = await reader.GetMediaInfoAsync(path);
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 1), 1);
        var bytes = await Assert.ThrowsAsync<LimitExceededException>(() =>
            reader.DecodeAsync(media, plan, FrameGeometry.FullFrame, new VideoLimits { MaxDecodedBytes = 321 * 241 * 3 * 8 }));
        Assert.Equal(Limit.DecodedBytes, bytes.Limit);
    }

    [Fact]
    public void Limits_RequestCanOnlyTighten()
    {
        var server = new VideoLimits { MaxFileBytes = 1000, MaxDuration = TimeSpan.FromSeconds(10) };
        var merged = server.Tighten(new VideoLimits { MaxFileBytes = 5000, MaxDuration = TimeSpan.FromSeconds(2) });
        Assert.Equal(1000, merged.MaxFileBytes);
        Assert.Equal(TimeSpan.FromSeconds(2), merged.MaxDuration);
    }

    [Theory]
    [InlineData(DecodePath.Cli)]
    [InlineData(DecodePath.Worker)]
    public async Task DecodeAsync_Cancelled_ThrowsAndNoDecoderOutlivesIt(DecodePath path)
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = path });
        var media = await reader.GetMediaInfoAsync(videos.Path("moving-320x240-20s.mp4"));
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan(Enumerable.Range(0, 500).ToArray())]);
        int pipesBefore = CountPipeFiles();
        using var cancel = new CancellationTokenSource();

        var decode = reader.DecodeAsync(media, plan, FrameGeometry.FullFrame, cancellationToken: cancel.Token);
        await Poll.UntilAsync(() => ChildProcesses.Decoders(videos.Folder).Count > 0, TimeSpan.FromSeconds(10));
        var decoding = ChildProcesses.Decoders(videos.Folder);
        cancel.Cancel();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => decode);
        // The process that was decoding is gone (killed, not merely done with the file or back in a pool).
        await Poll.UntilAsync(() => !decoding.Any(Alive), TimeSpan.FromSeconds(5));
        Assert.DoesNotContain(decoding, Alive);
        Assert.Empty(ChildProcesses.Decoders(videos.Folder));
        Assert.Equal(pipesBefore, CountPipeFiles());
    }

    [Theory]
    [InlineData(DecodePath.Cli)]
    [InlineData(DecodePath.Worker)]
    public async Task DecodeAsync_Timeout_ThrowsTimeoutAndKillsTheDecoder(DecodePath path)
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = path });
        var media = await reader.GetMediaInfoAsync(videos.Path("moving-320x240-20s.mp4"));
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan(Enumerable.Range(0, 500).ToArray())]);
        int pipesBefore = CountPipeFiles();
        var tight = new VideoLimits { ProcessTimeout = TimeSpan.FromMilliseconds(50) }; // a request's own, tighter limit

        await Assert.ThrowsAsync<DeadlineExceededException>(() => reader.DecodeAsync(media, plan, FrameGeometry.FullFrame, tight));
        await Poll.UntilAsync(() => ChildProcesses.Decoders(videos.Folder).Count == 0, TimeSpan.FromSeconds(5));
        Assert.Empty(ChildProcesses.Decoders(videos.Folder));
        Assert.Equal(pipesBefore, CountPipeFiles());
    }

    [Theory]
    [InlineData(DecodePath.Cli)]
    [InlineData(DecodePath.Worker)]
    public async Task DecodeAsync_SuccessAndCorruptFailure_LeaveNoProcessOrPipeBehind(DecodePath path)
    {
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = path });
        int pipesBefore = CountPipeFiles();
        var good = await reader.GetMediaInfoAsync(videos.Path("index.mkv"));
        await reader.DecodeAsync(good, SamplingPlan.Evaluation(good.Grid(), new ClipSpec(4, 2), 3), FrameGeometry.FullFrame);
        var broken = await reader.GetMediaInfoAsync(videos.Path("truncated-faststart.mp4"));
        await Assert.ThrowsAsync<CorruptVideoException>(() =>
            reader.DecodeAsync(broken, SamplingPlan.Evaluation(broken.Grid(), new ClipSpec(4, 2), 3), FrameGeometry.FullFrame));

        Assert.Empty(ChildProcesses.Decoders(videos.Folder));
        Assert.Equal(pipesBefore, CountPipeFiles());
    }

    [Theory]
    [InlineData(DecodePath.Cli)]
    [InlineData(DecodePath.Worker)]
    public async Task DecodeAsync_ManyAtOnce_NeverMoreDecodersThanTheCap(DecodePath path)
    {
        using var reader = new VideoReader(new VideoReaderOptions { MaxConcurrentProcesses = 2, DecodePath = path });
        var media = await reader.GetMediaInfoAsync(videos.Path("moving-320x240-20s.mp4"));
        var plans = Enumerable.Range(0, 6).Select(i => SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 2), 1 + i % 3)).ToArray();
        int peak = 0;
        using var stop = new CancellationTokenSource();
        var watcher = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                peak = Math.Max(peak, ChildProcesses.Decoders(videos.Folder).Count);
                await Task.Delay(5);
            }
        });

        var results = await Task.WhenAll(plans.Select(p => reader.DecodeAsync(media, p, new FrameGeometry(64))));
        await stop.CancelAsync();
        await watcher;

        Assert.All(results, r => Assert.Equal(r.Views.Count * 8, r.Views.Sum(v => v.Frames.Count)));
        Assert.InRange(peak, 1, 2);
    }

    private static bool Alive(int pid) => File.Exists($"/proc/{pid}/stat") && !File.ReadAllText($"/proc/{pid}/stat").Contains(") Z ", StringComparison.Ordinal);

    private static int CountPipeFiles() => Directory.EnumerateFiles(Path.GetTempPath(), "CoreFxPipe_*").Count();

}

/// <summary>Decoder processes whose parent is this test process (ffmpeg, ffprobe, decode workers), read from /proc.</summary>
internal static class ChildProcesses
{
    /// <summary>The kernel's name of a decode worker process (15 characters of its file name).</summary>
    public const string WorkerComm = "cvrl-decode-wor";

    /// <summary>
    /// The decoders at work; with <paramref name="reading"/>, only those reading a file under that
    /// folder (an ffmpeg whose command line names it, a worker holding such a file open), so tests of
    /// other collections running beside the caller are not counted, nor idle workers.
    /// </summary>
    public static IReadOnlyList<int> Decoders(string? reading = null) =>
        Children(c => c is "ffmpeg" or "ffprobe" or WorkerComm)
            .Where(pid => reading is null || Reads(pid, reading))
            .ToArray();

    /// <summary>This process's decode workers, idle or not.</summary>
    public static IReadOnlyList<int> Workers() => Children(c => c == WorkerComm);

    /// <summary>Where each open descriptor of <paramref name="pid"/> points.</summary>
    public static IReadOnlyList<string> OpenFiles(int pid)
    {
        var targets = new List<string>();
        try
        {
            foreach (string fd in Directory.EnumerateFileSystemEntries($"/proc/{pid}/fd"))
            {
                try
                {
                    targets.Add(new FileInfo(fd).LinkTarget ?? "");
                }
                catch (IOException)
                {
                    // Closed while we looked.
                }
            }
        }
        catch (IOException)
        {
            // The process ended.
        }

        return targets;
    }

    private static bool Reads(int pid, string folder)
    {
        try
        {
            return File.ReadAllText($"/proc/{pid}/cmdline").Contains(folder, StringComparison.Ordinal)
                || OpenFiles(pid).Any(t => t.StartsWith(folder, StringComparison.Ordinal));
        }
        catch (IOException)
        {
            return false;
        }
    }

    private static List<int> Children(Func<string, bool> named)
    {
        int self = Environment.ProcessId;
        var children = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out int pid))
            {
                continue;
            }

            try
            {
                // /proc/PID/stat: "pid (comm) state ppid ..."
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int close = stat.LastIndexOf(')');
                string comm = stat[(stat.IndexOf('(') + 1)..close];
                int ppid = int.Parse(stat[(close + 2)..].Split(' ')[1], System.Globalization.CultureInfo.InvariantCulture);
                if (ppid == self && named(comm))
                {
                    children.Add(pid);
                }
            }
            catch (IOException)
            {
                // The process ended while we looked.
            }
        }

        return children;
    }
}
