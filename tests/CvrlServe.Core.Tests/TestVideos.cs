using System.Diagnostics;

namespace CvrlServe.Core.Tests;

/// <summary>
/// Real video files made with the ffmpeg CLI once per test run, in a temporary folder deleted at the
/// end. "Index" videos encode frame n as a grey level (luma 16 + 7n), so a decoded frame tells which
/// source frame it is; see <see cref="FrameIndexOf"/>.
/// </summary>
public sealed class TestVideos : IDisposable
{
    public const int IndexFrames = 30;
    public const int IndexFps = 25;
    private const string IndexSource = "nullsrc=s=64x48:r=25,geq=lum='16+N*7':cb=128:cr=128,format=yuv420p";

    public TestVideos()
    {
        Folder = Directory.CreateTempSubdirectory("cvrl-videos-").FullName;
        Make("index.mp4", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v libx264 -g 8 -bf 2 -crf 8 -pix_fmt yuv420p");
        Make("index.webm", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v libvpx-vp9 -b:v 0 -crf 8 -deadline realtime -g 8");
        Make("index.avi", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v mpeg4 -q:v 2 -g 8");
        Make("index.mkv", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v libx264 -g 8 -crf 8 -pix_fmt yuv420p");
        Make("index.mov", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v libx264 -g 8 -crf 8 -pix_fmt yuv420p");
        Make("index.ts", $"-f lavfi -i \"{IndexSource}\" -frames:v {IndexFrames} -c:v libx264 -g 8 -bf 2 -crf 8 -pix_fmt yuv420p");
        Make("solid.mp4", "-f lavfi -i color=c=0xC83264:s=64x48:r=25 -frames:v 10 -c:v libx264 -crf 10 -pix_fmt yuv420p");
        // Left half white, right half black; stored 64×48 with a 90° display rotation.
        Make("halves.mp4", "-f lavfi -i \"color=white:s=64x48:r=25,drawbox=x=32:y=0:w=32:h=48:color=black:t=fill\" -frames:v 5 -c:v libx264 -crf 10 -pix_fmt yuv420p");
        Make("rotated90.mp4", $"-i \"{Path("halves.mp4")}\" -c copy -metadata:s:v rotate=90");
        Make("odd-321x241.mp4", "-f lavfi -i testsrc2=s=322x242:r=25 -vf format=yuv444p,crop=321:241:0:0 -frames:v 12 -c:v libx264 -crf 20 -pix_fmt yuv444p");
        Make("single-frame.mp4", "-f lavfi -i color=c=0x3264C8:s=64x48:r=25 -frames:v 1 -c:v libx264 -pix_fmt yuv420p");
        Make("short-5.mp4", $"-f lavfi -i \"{IndexSource}\" -frames:v 5 -c:v libx264 -crf 8 -pix_fmt yuv420p");
        // Frames 0–9 at 25 fps, then frames 10–19 at 10 fps.
        Make("vfr.mp4", $"-f lavfi -i \"{IndexSource},settb=1/1000,setpts='if(lt(N,10),N/25,0.4+(N-10)/10)/TB'\" -frames:v 20 -fps_mode vfr -c:v libx264 -crf 8 -pix_fmt yuv420p -video_track_timescale 1000");
        Make("audio-only.m4a", "-f lavfi -i sine=frequency=440:duration=1 -c:a aac");
        Make("moving-320x240-20s.mp4", "-f lavfi -i testsrc2=s=320x240:r=25 -t 20 -c:v libx264 -preset ultrafast -g 50 -pix_fmt yuv420p");
        Make("long-index-ish.mp4", "-f lavfi -i testsrc2=s=64x48:r=30 -t 12 -c:v libx264 -preset ultrafast -g 60 -pix_fmt yuv420p");
        File.WriteAllBytes(Path("empty.mp4"), []);
        File.WriteAllText(Path("text.mp4"), "This is a text file with a video extension.\n");
        // moov at the end, cut in half: no index to read.
        Make("whole.mp4", "-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 50 -c:v libx264 -pix_fmt yuv420p");
        Truncate("whole.mp4", "truncated.mp4", 0.5);
        // moov first (faststart), cut at 40 %: probes fine, frames past the cut are missing.
        Make("faststart.mp4", "-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 50 -c:v libx264 -pix_fmt yuv420p -movflags +faststart");
        Truncate("faststart.mp4", "truncated-faststart.mp4", 0.4);
    }

    public string Folder { get; }

    public string Path(string name) => System.IO.Path.Combine(Folder, name);

    /// <summary>Which frame of an index video a decoded pixel value came from (limited-range grey).</summary>
    public static int FrameIndexOf(byte grey) => (int)Math.Round(grey * 219.0 / 255.0 / 7.0);

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    public static void RunFfmpeg(string arguments)
    {
        var start = new ProcessStartInfo("ffmpeg", $"-nostdin -hide_banner -loglevel error -y {arguments}")
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg {arguments} failed: {stderr}");
        }
    }

    private void Make(string name, string arguments) => RunFfmpeg($"{arguments} \"{Path(name)}\"");

    private void Truncate(string from, string to, double fraction)
    {
        var bytes = File.ReadAllBytes(Path(from));
        File.WriteAllBytes(Path(to), bytes[..(int)(bytes.Length * fraction)]);
    }
}

[CollectionDefinition(Name)]
public sealed class SharedVideos : ICollectionFixture<TestVideos>
{
    public const string Name = "videos";
}
