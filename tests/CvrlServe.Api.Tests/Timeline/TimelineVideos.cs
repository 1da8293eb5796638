using System.Globalization;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Tests.Timeline;

/// <summary>
/// Small videos made once per test class with ffmpeg (through Core's <see cref="ToolProcess"/>, arguments
/// as a list) in a temporary folder removed afterwards.
/// </summary>
public sealed class TimelineVideos : IAsyncLifetime
{
    private readonly DirectoryInfo _folder = Directory.CreateTempSubdirectory("cvrl-timeline-tests-");

    /// <summary>testsrc2, 320×240, 25 fps, 4 s.</summary>
    public string Landscape => Path.Combine(_folder.FullName, "landscape.mp4");

    /// <summary>testsrc2, 240×320, 25 fps, 2 s.</summary>
    public string Portrait => Path.Combine(_folder.FullName, "portrait.mp4");

    /// <summary>192×108 (16:9), 25 fps: red for the first 2 s, blue for the next 2 s.</summary>
    public string RedThenBlue => Path.Combine(_folder.FullName, "red-then-blue.mp4");

    public async Task InitializeAsync()
    {
        await FfmpegAsync(["-f", "lavfi", "-i", "testsrc2=s=320x240:r=25", "-t", "4", .. Encode(Landscape)]);
        await FfmpegAsync(["-f", "lavfi", "-i", "testsrc2=s=240x320:r=25", "-t", "2", .. Encode(Portrait)]);
        await FfmpegAsync(
        [
            "-f", "lavfi", "-i", "color=c=red:s=192x108:r=25:d=2",
            "-f", "lavfi", "-i", "color=c=blue:s=192x108:r=25:d=2",
            "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0[v]", "-map", "[v]", .. Encode(RedThenBlue),
        ]);
    }

    public Task DisposeAsync()
    {
        _folder.Delete(recursive: true);
        return Task.CompletedTask;
    }

    private static string[] Encode(string path) => ["-c:v", "libx264", "-pix_fmt", "yuv420p", "file:" + path];

    private static async Task FfmpegAsync(string[] arguments)
    {
        var result = await ToolProcess.RunAsync("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", .. arguments], null,
            TimeSpan.FromMinutes(1), "Making a test video");
        if (result.ExitCode != 0)
        {
            throw new InvalidOperationException(string.Create(CultureInfo.InvariantCulture,
                $"ffmpeg failed ({result.ExitCode}): {string.Join('\n', result.StderrTail)}"));
        }
    }
}
