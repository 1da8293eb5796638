using System.Globalization;
using System.Text.Json;
using FFMpegCore;

namespace CvrlServe.Core.Video;

/// <summary>
/// Turns ffprobe's analysis into a <see cref="MediaInfo"/>. Pure: tested on captured ffprobe output
/// (<see cref="FFProbe.FromJson"/>) apart from the process that produced it.
/// </summary>
public static class MediaInfoParser
{
    private const double MinSaneFps = 0.1;
    private const double MaxSaneFps = 300;

    public static MediaInfo Parse(IMediaAnalysis analysis, string path, long fileBytes)
    {
        ArgumentNullException.ThrowIfNull(analysis);
        string format = analysis.Format?.FormatName ?? "";
        bool hasAudio = analysis.AudioStreams.Count > 0;
        var video = analysis.VideoStreams.FirstOrDefault(s => !IsAttachedPicture(s));
        if (video is null || video.Width is not > 0 || video.Height is not > 0)
        {
            return new MediaInfo(path, fileBytes, format, false, "", "", 0, 0, 0, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0, 0,
                FrameCountSource.EstimatedFromDuration, false, hasAudio);
        }

        int rotation = ((video.Rotation % 360) + 360) % 360;
        bool quarterTurn = rotation is 90 or 270;
        int width = quarterTurn ? video.Height.Value : video.Width.Value;
        int height = quarterTurn ? video.Width.Value : video.Height.Value;

        var duration = video.Duration > TimeSpan.Zero ? video.Duration : analysis.Format?.Duration ?? TimeSpan.Zero;
        var start = video.StartTime > TimeSpan.Zero ? video.StartTime : TimeSpan.Zero;
        var containerStart = analysis.Format?.StartTime is { } s && s >= TimeSpan.Zero && s <= start ? s : start;
        long? statedFrames = StatedFrameCount(analysis, video.Index);
        double fps = TrustedFrameRate(video.AverageFrameRate, video.RealFrameRate, statedFrames, duration);
        if (fps <= 0)
        {
            throw new UnsupportedMediaException(
                $"'{System.IO.Path.GetFileName(path)}' states no usable frame rate (avg {video.AverageFrameRate}, r {video.RealFrameRate}).");
        }

        bool variable = IsSane(video.AverageFrameRate) && IsSane(video.RealFrameRate)
            && Math.Abs(video.AverageFrameRate - video.RealFrameRate) > 0.01 * video.RealFrameRate;

        (long frames, var source) = statedFrames is { } n
            ? (n, FrameCountSource.Container)
            // Floor, not round: an estimate one frame too high would ask ffmpeg for a frame that is not there.
            : ((long)Math.Max(1, Math.Floor(duration.TotalSeconds * fps + 1e-6)), FrameCountSource.EstimatedFromDuration);

        return new MediaInfo(path, fileBytes, format, true, video.CodecName ?? "", video.PixelFormat ?? "",
            width, height, rotation, start, containerStart, duration, fps, frames, source, variable, hasAudio);
    }

    /// <summary>
    /// The frame rate to sample with. <c>avg_frame_rate</c> is the true average, but some files state an
    /// absurd one (a sample reports 187 fps); <c>r_frame_rate</c> is the base rate, which an average cannot
    /// exceed. So: the average when sane and not above the base rate, else the base rate, else the
    /// container's frame count over the duration; 0 when nothing is usable.
    /// </summary>
    public static double TrustedFrameRate(double average, double nominal, long? statedFrames, TimeSpan duration)
    {
        if (IsSane(average) && (!IsSane(nominal) || average <= nominal * 1.01))
        {
            return average;
        }

        if (IsSane(nominal))
        {
            return nominal;
        }

        if (statedFrames is > 0 && duration > TimeSpan.Zero)
        {
            double fromCount = statedFrames.Value / duration.TotalSeconds;
            return IsSane(fromCount) ? fromCount : 0;
        }

        return 0;
    }

    private static bool IsSane(double fps) => double.IsFinite(fps) && fps >= MinSaneFps && fps <= MaxSaneFps;

    private static bool IsAttachedPicture(VideoStream stream) =>
        stream.Disposition is { } d && d.TryGetValue("attached_pic", out bool attached) && attached;

    private static long? StatedFrameCount(IMediaAnalysis analysis, int streamIndex)
    {
        var raw = analysis.Raw?.Streams?.FirstOrDefault(s => s.Index == streamIndex);
        if (raw?.ExtensionData is null || !raw.ExtensionData.TryGetValue("nb_frames", out var element))
        {
            return null;
        }

        string? text = element.ValueKind == JsonValueKind.String ? element.GetString() : element.GetRawText();
        return long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long n) && n > 0 ? n : null;
    }
}
