namespace CvrlServe.Core.Video;

/// <summary>Settings of a <see cref="VideoReader"/>: where ffmpeg is, how many run at once, what is accepted.</summary>
public sealed class VideoReaderOptions
{
    /// <summary>
    /// Demuxers an upload may be read with (ffmpeg's <c>-format_whitelist</c>). Playlists and concat lists
    /// (hls, concat, image2…) are absent on purpose: they make ffmpeg open other files or URLs.
    /// </summary>
    public static IReadOnlyList<string> DefaultAllowedFormats { get; } =
        ["mov", "mp4", "m4a", "3gp", "3g2", "mj2", "matroska", "webm", "avi", "flv", "mpegts", "mpeg", "asf", "ogg", "gif"];

    /// <summary>Folder holding ffmpeg and ffprobe; null finds them on PATH.</summary>
    public string? BinaryFolder { get; set; }

    /// <summary>Most ffmpeg/ffprobe processes this reader runs at once; the rest wait their turn.</summary>
    public int MaxConcurrentProcesses { get; set; } = Math.Max(1, Environment.ProcessorCount);

    /// <summary>The reader's limits; a request may tighten them.</summary>
    public VideoLimits Limits { get; set; } = new();

    public IReadOnlyList<string> AllowedFormats { get; set; } = DefaultAllowedFormats;

    /// <summary>Frames closer than this are read through rather than reached by a seek.</summary>
    public double SeekGapSeconds { get; set; } = 2.0;

    /// <summary>Probe results kept (by path, size and modification time).</summary>
    public int ProbeCacheCapacity { get; set; } = 1024;
}
