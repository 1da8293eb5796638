using System.Globalization;

namespace CvrlServe.Core.Tests;

/// <summary>How a frame of an index video says which frame it is.</summary>
public enum IndexKind
{
    /// <summary>Frame n is grey 16 + 7n all over (n &lt; 30), as in <see cref="TestVideos"/>.</summary>
    OneLevel,

    /// <summary>Frame n is grey 16 + 7(n mod 30) in the top half and 16 + 7⌊n/30⌋ in the bottom half (n &lt; 900).</summary>
    TwoLevel,
}

/// <summary>What ffprobe and a plain ffmpeg decode say about one fixture, gathered without the code under test.</summary>
/// <param name="FrameTimes">Presentation time of every frame in the order the decoder gives them: ffprobe's
/// <c>best_effort_timestamp_time</c>; a frame without one is taken to follow its predecessor by 1/<c>r_frame_rate</c>.</param>
/// <param name="ContentIndices">The index each decoded frame carries in its pixels (frame n should carry n).</param>
public sealed record FileFacts(
    string Format,
    string Codec,
    string AvgFrameRate,
    string RFrameRate,
    string NbFrames,
    string StreamDuration,
    string FormatDuration,
    string StartTime,
    string FirstFramePts,
    string FirstFrameBestEffort,
    string PictTypes,
    double[] FrameTimes,
    int[] ContentIndices)
{
    public int Frames => FrameTimes.Length;

    /// <summary>The source frame on screen in the middle of grid slot <paramref name="slot"/> of a grid at <paramref name="rate"/> starting at the first frame.</summary>
    public int FrameOnScreen(int slot, double rate)
    {
        double mid = (slot + 0.5) / rate;
        int frame = 0;
        for (int n = 0; n < FrameTimes.Length; n++)
        {
            if (FrameTimes[n] - FrameTimes[0] <= mid + 1e-6)
            {
                frame = n;
            }
        }

        return frame;
    }

    public override string ToString() => string.Create(CultureInfo.InvariantCulture,
        $"format={Format} codec={Codec} avg_frame_rate={AvgFrameRate} r_frame_rate={RFrameRate} nb_frames={NbFrames} " +
        $"frames decoded={Frames} stream duration={StreamDuration} format duration={FormatDuration} start_time={StartTime} " +
        $"first frame pts_time={FirstFramePts} best_effort={FirstFrameBestEffort} picture types={PictTypes}");
}

/// <summary>
/// Irregular videos made with the ffmpeg CLI once per run: the shapes real uploads take that the regular
/// fixtures in <see cref="TestVideos"/> do not (AVI without pts, Ogg without an average rate, VFR with a gap,
/// B-frames in MPEG-TS, index videos longer than the seek gap). Each one's facts are read back with
/// ffprobe and a plain decode (<see cref="Facts"/>); a test asserts each really has its irregularity.
/// </summary>
public sealed class IrregularVideos : IDisposable
{
    public const int Fps = 25;
    public const int LongFrames = 250;

    /// <summary>The VFR-with-gap video's frames; the gap and the slower tail are in <see cref="GapPtsMs"/>.</summary>
    public const int GapFrames = 27;

    private const string SingleSource = "nullsrc=s=64x48:r=25,geq=lum='16+N*7':cb=128:cr=128,format=yuv420p";
    private const string TwoLevelSource = "nullsrc=s=64x48:r=25,geq=lum='if(lt(Y,24),16+7*mod(N,30),16+7*floor(N/30))':cb=128:cr=128,format=yuv420p";

    private readonly Dictionary<string, FileFacts> _facts = [];

    public IrregularVideos()
    {
        Folder = Directory.CreateTempSubdirectory("cvrl-irregular-").FullName;
        string[] xvid = ["-c:v", "mpeg4", "-bf", "2", "-vtag", "xvid", "-q:v", "2"];
        // AVI stores no pts: with B-frames, timestamps come from dts and the first frame lands one frame late.
        Make("xvid-26.avi", SingleSource, 26, xvid);
        Make("xvid-28.avi", SingleSource, 28, xvid);
        // Theora in Ogg: the stream states no average frame rate (avg_frame_rate=0/0).
        Make("theora.ogv", SingleSource, 30, "-c:v", "libtheora", "-q:v", "8");
        // Frames 0–9 every 40 ms, a 0.48 s gap, frames 10–23 every 40 ms, then frames 24–26 every 120 ms.
        Make("vfr-gap.mp4", $"{SingleSource},settb=1/1000,setpts='if(lt(N,10),40*N,if(lt(N,24),40*(N+12),1400+120*(N-23)))'", GapFrames,
            "-fps_mode", "vfr", "-c:v", "libx264", "-crf", "8", "-g", "8", "-bf", "2", "-pix_fmt", "yuv420p", "-video_track_timescale", "1000");
        Make("bframes-mpeg2.ts", SingleSource, 30, "-c:v", "mpeg2video", "-bf", "2", "-g", "12", "-q:v", "2");
        string[] x264 = ["-c:v", "libx264", "-preset", "ultrafast", "-crf", "8", "-g", "50", "-bf", "2", "-pix_fmt", "yuv420p"];
        Make("long-index.mp4", TwoLevelSource, LongFrames, x264);
        Make("long-index.mkv", TwoLevelSource, LongFrames, x264);
        Make("long-index.ts", TwoLevelSource, LongFrames, x264);
        Make("long-index.avi", TwoLevelSource, LongFrames, [.. xvid, "-g", "50"]);
    }

    /// <summary>Every fixture, by name.</summary>
    public static IReadOnlyList<string> Names { get; } =
        ["xvid-26.avi", "xvid-28.avi", "theora.ogv", "vfr-gap.mp4", "bframes-mpeg2.ts", "long-index.mp4", "long-index.mkv", "long-index.ts", "long-index.avi"];

    public string Folder { get; }

    public string Path(string name) => System.IO.Path.Combine(Folder, name);

    public static IndexKind KindOf(string name) => name.StartsWith("long-", StringComparison.Ordinal) ? IndexKind.TwoLevel : IndexKind.OneLevel;

    /// <summary>The presentation time written for frame <paramref name="n"/> of vfr-gap.mp4, in milliseconds.</summary>
    public static int GapPtsMs(int n) => n < 10 ? 40 * n : n < 24 ? 40 * (n + 12) : 1400 + 120 * (n - 23);

    /// <summary>The index a 64×48 (or any size) rgb24 frame of an index video carries.</summary>
    public static int IndexOf(ReadOnlySpan<byte> rgb, int width, int height, IndexKind kind)
    {
        int Index(ReadOnlySpan<byte> frame, int y) => TestVideos.FrameIndexOf(frame[(y * width + width / 2) * 3]);
        return kind == IndexKind.OneLevel
            ? Index(rgb, height / 2)
            : Index(rgb, height * 5 / 6) * 30 + Index(rgb, height / 6);
    }

    /// <summary>What ffprobe and a plain ffmpeg decode say about <paramref name="name"/> (computed once).</summary>
    public FileFacts Facts(string name)
    {
        lock (_facts)
        {
            if (!_facts.TryGetValue(name, out var facts))
            {
                facts = Read(Path(name), KindOf(name));
                _facts[name] = facts;
            }

            return facts;
        }
    }

    public static FileFacts Read(string path, IndexKind kind)
    {
        using var info = FfTools.ProbeJson(path, "-select_streams", "v:0",
            "-show_entries", "stream=codec_name,avg_frame_rate,r_frame_rate,nb_frames,duration,start_time:format=format_name,duration");
        var stream = info.RootElement.GetProperty("streams")[0];
        var format = info.RootElement.GetProperty("format");
        using var frames = FfTools.ProbeJson(path, "-select_streams", "v:0", "-show_entries", "frame=pts_time,best_effort_timestamp_time,pict_type");
        var list = frames.RootElement.GetProperty("frames").EnumerateArray().ToArray();
        double step = 1 / FfTools.Rate(FfTools.Field(stream, "r_frame_rate"));
        var times = new double[list.Length];
        for (int n = 0; n < list.Length; n++)
        {
            double t = FfTools.Number(FfTools.Field(list[n], "best_effort_timestamp_time"));
            times[n] = double.IsNaN(t) ? (n == 0 ? 0 : times[n - 1] + step) : t;
        }

        byte[] rgb = FfTools.DecodeAllRgb(path);
        const int FrameBytes = 64 * 48 * 3;
        var indices = new int[rgb.Length / FrameBytes];
        for (int n = 0; n < indices.Length; n++)
        {
            indices[n] = IndexOf(rgb.AsSpan(n * FrameBytes, FrameBytes), 64, 48, kind);
        }

        return new FileFacts(
            FfTools.Field(format, "format_name"),
            FfTools.Field(stream, "codec_name"),
            FfTools.Field(stream, "avg_frame_rate"),
            FfTools.Field(stream, "r_frame_rate"),
            FfTools.Field(stream, "nb_frames"),
            FfTools.Field(stream, "duration"),
            FfTools.Field(format, "duration"),
            FfTools.Field(stream, "start_time"),
            list.Length > 0 ? FfTools.Field(list[0], "pts_time") : "N/A",
            list.Length > 0 ? FfTools.Field(list[0], "best_effort_timestamp_time") : "N/A",
            string.Concat(list.Select(f => FfTools.Field(f, "pict_type"))),
            times,
            indices);
    }

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    private void Make(string name, string source, int frames, params string[] encode) =>
        FfTools.Ffmpeg(["-f", "lavfi", "-i", source, "-frames:v", frames.ToString(CultureInfo.InvariantCulture), .. encode, Path(name)]);
}

/// <summary>
/// Not parallel with other collections: the "videos" collection's safety tests count every ffmpeg child
/// of this process, and these tests start many.
/// </summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SharedIrregularVideos : ICollectionFixture<IrregularVideos>
{
    public const string Name = "irregular videos";
}
