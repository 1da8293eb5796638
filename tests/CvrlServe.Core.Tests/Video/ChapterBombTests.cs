using System.Diagnostics;
using System.Globalization;
using System.Text;
using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// A few-MB Matroska file with 200,000 empty chapters: ffprobe's JSON for it runs to tens of MB. Probing
/// it must end quickly, as success or a typed error, without the service's memory growing with the
/// chapter count. Isolated, so the peak resident set it measures is this test's alone.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class ChapterBombTests(ITestOutputHelper output) : IDisposable
{
    public const int Chapters = 200_000;
    private const long MaxGrowthBytes = 100L * 1024 * 1024;
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-chapters-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task GetMediaInfoAsync_200kChapters_QuickAndWithoutMemoryGrowth()
    {
        string path = MakeChapterBomb();
        long bytes = new FileInfo(path).Length;
        var (exit, stdout, stderr) = FfTools.TryRun("ffprobe", ["-v", "error", "-show_entries", "chapter=id", "-of", "csv=p=0", "--", path]);
        Assert.True(exit == 0, stderr);
        int chapters = stdout.Count(b => b == (byte)'\n');
        output.WriteLine($"{Path.GetFileName(path)}: {bytes / 1e6:F1} MB, {chapters} chapters");
        Assert.Equal(Chapters, chapters);
        Assert.InRange(bytes, 1_000_000, 20_000_000);
        stdout = [];

        using var reader = new VideoReader();
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        long baseline = Status("VmRSS");
        bool reset = ResetPeak();
        long hwmBefore = Status("VmHWM");
        long sampled = baseline;
        using var stop = new CancellationTokenSource();
        var sampler = Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                sampled = Math.Max(sampled, Status("VmRSS"));
                await Task.Delay(5);
            }
        });

        var clock = Stopwatch.StartNew();
        string outcome;
        try
        {
            var media = await reader.GetMediaInfoAsync(path);
            outcome = string.Create(CultureInfo.InvariantCulture, $"success: {media.Width}×{media.Height}, {media.FrameCount} frames");
        }
        catch (CvrlException e)
        {
            outcome = $"{e.Kind}: {e.Message}";
        }
        finally
        {
            clock.Stop();
            await stop.CancelAsync();
            await sampler;
        }

        long peak = Math.Max(sampled, reset ? Status("VmHWM") : 0);
        long growth = peak - baseline;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{outcome} in {clock.ElapsedMilliseconds} ms; resident {baseline / 1048576} MB before, peak {peak / 1048576} MB " +
            $"(+{growth / 1048576} MB; VmHWM {(reset ? "reset" : "not resettable")}, {hwmBefore / 1048576} MB at the start)"));
        var problems = new List<string>();
        if (clock.Elapsed >= TimeSpan.FromSeconds(5))
        {
            problems.Add($"probing took {clock.Elapsed.TotalSeconds:F1} s (limit 5 s)");
        }

        if (growth > MaxGrowthBytes)
        {
            problems.Add($"the process's resident memory grew by {growth / 1048576} MB while probing (limit {MaxGrowthBytes / 1048576} MB)");
        }

        Assert.True(problems.Count == 0, string.Join("; ", problems));
    }

    private string MakeChapterBomb()
    {
        string video = Path.Combine(_folder, "video.mkv");
        FfTools.Ffmpeg("-f", "lavfi", "-i", "testsrc2=s=64x48:r=25", "-frames:v", "10", "-c:v", "libx264", "-pix_fmt", "yuv420p", video);
        string metadata = Path.Combine(_folder, "chapters.txt");
        using (var writer = new StreamWriter(metadata, false, new UTF8Encoding(false)))
        {
            writer.Write(";FFMETADATA1\n");
            for (int i = 0; i < Chapters; i++)
            {
                writer.Write(string.Create(CultureInfo.InvariantCulture, $"[CHAPTER]\nTIMEBASE=1/1000\nSTART={i}\nEND={i + 1}\n"));
            }
        }

        string bomb = Path.Combine(_folder, "chapters.mkv");
        FfTools.Ffmpeg("-i", video, "-i", metadata, "-map", "0:v", "-map_metadata", "1", "-map_chapters", "1", "-c", "copy", bomb);
        return bomb;
    }

    /// <summary>A /proc/self/status value (kB) in bytes.</summary>
    private static long Status(string key)
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith(key + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(key.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture) * 1024;
            }
        }

        return 0;
    }

    /// <summary>Resets VmHWM to the current resident set (Linux: "5" to /proc/self/clear_refs), so the peak is this test's.</summary>
    private static bool ResetPeak()
    {
        try
        {
            File.WriteAllText("/proc/self/clear_refs", "5");
            return true;
        }
        catch (IOException)
        {
            return false;
        }
        catch (UnauthorizedAccessException)
        {
            return false;
        }
    }
}
