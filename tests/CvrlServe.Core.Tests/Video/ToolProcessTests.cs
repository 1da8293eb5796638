using System.Diagnostics;
using System.Text;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class ToolProcessTests
{
    [Fact]
    public async Task RunAsync_HostileArguments_ReachTheProcessVerbatimOneEach()
    {
        string[] hostile = ["L\" -safe 0 -print_filename ", "ends\\", "new\nline", "-i", "$(touch /tmp/x)", "'quoted'", ""];
        string stdout = "";
        var result = await ToolProcess.RunAsync("printf", ["[%s]", .. hostile], async (s, t) =>
            stdout = Encoding.UTF8.GetString(await ToolProcess.ReadCappedAsync(s, 4096, () => new InvalidOperationException(), t)),
            TimeSpan.FromSeconds(10), "printf");

        Assert.Equal(0, result.ExitCode);
        Assert.Equal(string.Concat(hostile.Select(a => $"[{a}]")), stdout);
    }

    [Fact]
    public async Task RunAsync_PastTheDeadline_KilledAndTyped()
    {
        var clock = Stopwatch.StartNew();
        var error = await Assert.ThrowsAsync<DeadlineExceededException>(() =>
            ToolProcess.RunAsync("sleep", ["30"], null, TimeSpan.FromMilliseconds(200), "Sleeping"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), $"took {clock.Elapsed}");
        Assert.Equal(ErrorKind.Timeout, error.Kind);
    }

    [Fact]
    public async Task RunAsync_Cancelled_KilledAndCancelled()
    {
        using var cancel = new CancellationTokenSource(TimeSpan.FromMilliseconds(200));
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            ToolProcess.RunAsync("sleep", ["30"], null, TimeSpan.FromMinutes(1), "Sleeping", cancel.Token));
    }

    [Fact]
    public async Task RunAsync_ReaderRefusesTooMuchOutput_ProcessKilledAndErrorPropagates()
    {
        // `yes` writes forever: only the reader's cap ends it.
        var clock = Stopwatch.StartNew();
        await Assert.ThrowsAsync<UnsupportedMediaException>(() => ToolProcess.RunAsync("yes", [], (s, t) =>
            ToolProcess.ReadCappedAsync(s, 64 * 1024, () => new UnsupportedMediaException("too much"), t), TimeSpan.FromMinutes(1), "yes"));
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(20), $"took {clock.Elapsed}");
    }

    [Fact]
    public async Task RunAsync_OutputNobodyReads_DrainedAndCounted()
    {
        var result = await ToolProcess.RunAsync("head", ["-c", "1000000", "/dev/zero"], null, TimeSpan.FromSeconds(20), "head");
        Assert.Equal(1_000_000, result.UnreadStdoutBytes);
    }

    [Fact]
    public async Task RunAsync_HugeStderr_OnlyTheTailIsKept()
    {
        // 2 MB of stderr, then a last line: the tail holds the last line and stays small.
        var result = await ToolProcess.RunAsync("bash", ["-c", "head -c 2000000 /dev/zero | tr '\\0' x >&2; echo >&2; echo the-end >&2"], null, TimeSpan.FromSeconds(20), "bash");
        Assert.Equal("the-end", result.StderrTail[^1]);
        Assert.True(result.StderrTail.Sum(l => l.Length) <= ToolProcess.MaxStderrChars);
    }

    [Fact]
    public async Task RunAsync_MissingBinary_SaysWhatToInstall()
    {
        var error = await Assert.ThrowsAsync<InvalidOperationException>(() =>
            ToolProcess.RunAsync("/nonexistent/ffmpeg", [], null, TimeSpan.FromSeconds(5), "x"));
        Assert.Contains("installed", error.Message, StringComparison.Ordinal);
    }
}
