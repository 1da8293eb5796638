using System.Globalization;
using System.Text.Json;

namespace CvrlServe.Core.Video;

/// <summary>
/// Turns ffprobe's JSON (the entries <see cref="Entries"/> asks for, of the first video stream that is not
/// cover art) into a <see cref="MediaInfo"/>. Pure, and tested on captured output apart from the process.
/// Everything in it came from an upload, so every number is parsed defensively: an unreadable, negative or
/// absurd value counts as absent, and the frame count is only believed when duration × rate agrees.
/// </summary>
public static class MediaInfoParser
{
    /// <summary>Most frames a grid may hold: far past any duration limit, and safe from int overflow.</summary>
    public const int MaxFrames = 1 << 28;

    /// <summary>The <c>-show_entries</c> value: exactly the fields read here.</summary>
    public const string Entries =
        "stream=index,codec_name,pix_fmt,width,height,start_time,duration,avg_frame_rate,r_frame_rate,nb_frames" +
        ":stream_disposition=attached_pic:stream_tags=rotate:stream_side_data=rotation" +
        ":format=format_name,start_time,duration,nb_streams:frame=best_effort_timestamp_time";

    /// <summary>
    /// The <c>-read_intervals</c> value: the first few packets, decoded for the first picture's real
    /// timestamp (AVI with B-frames states a start of 0 yet shows its first picture at 0.04 s).
    /// </summary>
    public const string ReadIntervals = "%+#6";

    private const double MinSaneFps = 0.1;
    private const double MaxSaneFps = 300;
    private const double MaxSeconds = 1e7; // ~115 days: beyond is a lie, not a video
    private const int MaxSide = 1 << 16;

    /// <summary>Parses ffprobe's JSON for the file at <paramref name="path"/> (<paramref name="fileBytes"/> long).</summary>
    public static MediaInfo Parse(string json, string path, long fileBytes)
    {
        JsonDocument document;
        try
        {
            document = JsonDocument.Parse(json, new JsonDocumentOptions { MaxDepth = 16 });
        }
        catch (JsonException e)
        {
            throw new UnsupportedMediaException("The file's metadata could not be read.", null, $"ffprobe's output for '{path}' is not JSON: {e.Message}", e);
        }

        using (document)
        {
            var root = document.RootElement;
            var format = Child(root, "format");
            string formatName = Text(format, "format_name") ?? "";
            var stream = FirstVideoStream(root);
            int storedWidth = Integer(stream, "width") is { } w and > 0 and <= MaxSide ? (int)w : 0;
            int storedHeight = Integer(stream, "height") is { } h and > 0 and <= MaxSide ? (int)h : 0;
            if (stream is null || storedWidth == 0 || storedHeight == 0)
            {
                return new MediaInfo(path, fileBytes, formatName, false, "", "", 0, 0, 0, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero, 0, 0,
                    FrameCountSource.EstimatedFromDuration, false);
            }

            var video = stream.Value;
            int rotation = Rotation(video);
            bool quarterTurn = rotation is 90 or 270;
            int width = quarterTurn ? storedHeight : storedWidth;
            int height = quarterTurn ? storedWidth : storedHeight;

            double streamStart = Seconds(video, "start_time") ?? 0;
            double start = FirstPicture(root) is { } first && first >= streamStart && first < streamStart + 10 ? first : streamStart;
            double containerStart = Seconds(format, "start_time") is { } s && s <= start ? s : start;
            double? formatDuration = Seconds(format, "duration");
            double duration = Seconds(video, "duration") is { } d and > 0 ? d : formatDuration ?? 0;
            if (Integer(format, "nb_streams") == 1 && formatDuration > duration)
            {
                // A file with one stream: the container's duration is the video's, and an mp4 track's can
                // stop before the last picture of a variable-rate video has been shown.
                duration = formatDuration.Value;
            }

            long? stated = Integer(video, "nb_frames") is { } n and > 0 ? n : null;
            double average = Rate(video, "avg_frame_rate");
            double nominal = Rate(video, "r_frame_rate");
            double fps = TrustedFrameRate(average, nominal, stated, TimeSpan.FromSeconds(duration));
            if (fps <= 0)
            {
                throw new UnsupportedMediaException("The video states no usable frame rate.", null,
                    $"'{path}': avg_frame_rate {average}, r_frame_rate {nominal}, nb_frames {stated}, duration {duration}");
            }

            bool variable = IsSane(average) && IsSane(nominal) && Math.Abs(average - nominal) > 0.01 * nominal;
            var (frames, source) = FrameCount(stated, duration, fps);
            if (duration <= 0)
            {
                duration = frames / fps; // so the duration limit still applies
            }

            return new MediaInfo(path, fileBytes, formatName, true, Text(video, "codec_name") ?? "", Text(video, "pix_fmt") ?? "",
                width, height, rotation, TimeSpan.FromSeconds(start), TimeSpan.FromSeconds(containerStart), TimeSpan.FromSeconds(duration),
                fps, frames, source, variable);
        }
    }

    /// <summary>
    /// The frame count to build the grid on. A stated count is believed only when it agrees with
    /// duration × rate (within 2 frames or 2 %): a header can state 4,294,967,280 frames for a 1 s video.
    /// Otherwise the estimate, floored (a frame too many would be asked of ffmpeg and not be there).
    /// Without a duration, the stated count (bounded) is all there is; the duration limit then applies to
    /// count / rate.
    /// </summary>
    public static (long Frames, FrameCountSource Source) FrameCount(long? stated, double durationSeconds, double fps)
    {
        if (durationSeconds > 0)
        {
            double estimate = Math.Min(MaxFrames, Math.Max(1, Math.Floor(durationSeconds * fps + 1e-6)));
            if (stated is { } n && Math.Abs(n - estimate) <= Math.Max(2, 0.02 * estimate))
            {
                return (n, FrameCountSource.Container);
            }

            return ((long)estimate, FrameCountSource.EstimatedFromDuration);
        }

        return stated is { } count ? (Math.Min(count, MaxFrames), FrameCountSource.Container) : (1, FrameCountSource.EstimatedFromDuration);
    }

    /// <summary>
    /// The frame rate to sample with. <c>avg_frame_rate</c> is the true average, but some files state an
    /// absurd one (a sample reports 187 fps) or none (<c>0/0</c>, e.g. Theora in Ogg); <c>r_frame_rate</c>
    /// is the base rate, which an average cannot exceed. So: the average when sane and not above the base
    /// rate, else the base rate, else the stated frame count over the duration; 0 when nothing is usable.
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

    private static JsonElement? FirstVideoStream(JsonElement root)
    {
        if (Child(root, "streams") is not { ValueKind: JsonValueKind.Array } streams)
        {
            return null;
        }

        foreach (var stream in streams.EnumerateArray())
        {
            // ffprobe is asked for the first non-cover-art video stream (-select_streams V:0); captured
            // full outputs list every stream, so skip audio and cover art here too.
            bool video = Text(stream, "codec_type") is null or "video";
            bool coverArt = Child(stream, "disposition") is { } disposition && Integer(disposition, "attached_pic") == 1;
            if (video && !coverArt)
            {
                return stream;
            }
        }

        return null;
    }

    /// <summary>The earliest best-effort timestamp among the first pictures decoded, if any has one.</summary>
    private static double? FirstPicture(JsonElement root)
    {
        double? first = null;
        if (Child(root, "frames") is { ValueKind: JsonValueKind.Array } frames)
        {
            foreach (var frame in frames.EnumerateArray())
            {
                if (Seconds(frame, "best_effort_timestamp_time") is { } t && (first is null || t < first))
                {
                    first = t;
                }
            }
        }

        return first;
    }

    private static int Rotation(JsonElement video)
    {
        double? degrees = null;
        if (Child(video, "side_data_list") is { ValueKind: JsonValueKind.Array } sideData)
        {
            foreach (var item in sideData.EnumerateArray())
            {
                degrees ??= Number(item, "rotation");
            }
        }

        degrees ??= Child(video, "tags") is { } tags ? Number(tags, "rotate") : null;
        if (degrees is not { } value || !double.IsFinite(value))
        {
            return 0;
        }

        // Only quarter turns change the frame size; round to the nearest one.
        long quarter = (long)Math.Round(value / 90.0) % 4;
        return (int)((quarter + 4) % 4) * 90;
    }

    private static JsonElement? Child(JsonElement? element, string name) =>
        element is { ValueKind: JsonValueKind.Object } e && e.TryGetProperty(name, out var child) ? child : null;

    private static string? Text(JsonElement? element, string name) =>
        Child(element, name) is { } value ? value.ValueKind switch
        {
            JsonValueKind.String => value.GetString(),
            JsonValueKind.Number => value.GetRawText(),
            _ => null,
        } : null;

    private static double? Number(JsonElement? element, string name) =>
        Text(element, name) is { } text && double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) && double.IsFinite(value)
            ? value
            : null;

    private static long? Integer(JsonElement? element, string name) =>
        Text(element, name) is { } text && long.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out long value) ? value : null;

    /// <summary>Seconds as ffprobe writes them (<c>1.2</c>, or <c>0:00:01.200000</c> with -sexagesimal); null when absent, negative or absurd.</summary>
    private static double? Seconds(JsonElement? element, string name)
    {
        if (Text(element, name) is not { } text)
        {
            return null;
        }

        double seconds = 0;
        foreach (string part in text.Split(':'))
        {
            if (!double.TryParse(part, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) || !double.IsFinite(value))
            {
                return null;
            }

            seconds = seconds * 60 + value;
        }

        return seconds is >= 0 and <= MaxSeconds ? seconds : null;
    }

    /// <summary>A rational rate such as <c>30000/1001</c>; 0 when absent or undefined (<c>0/0</c>).</summary>
    private static double Rate(JsonElement video, string name)
    {
        if (Text(video, name) is not { } text)
        {
            return 0;
        }

        string[] parts = text.Split('/');
        if (!double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double numerator))
        {
            return 0;
        }

        double denominator = 1;
        if (parts.Length == 2 && !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out denominator))
        {
            return 0;
        }

        double rate = numerator / denominator;
        return parts.Length <= 2 && denominator > 0 && double.IsFinite(rate) && rate > 0 ? rate : 0;
    }
}
