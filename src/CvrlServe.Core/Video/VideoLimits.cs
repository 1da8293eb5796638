namespace CvrlServe.Core.Video;

/// <summary>
/// Hard budgets for one request, all checked from the media before any frame is decoded. A request may
/// carry its own limits; they only ever tighten the reader's (see <see cref="Tighten"/>).
/// </summary>
public sealed record VideoLimits
{
    /// <summary>Largest input file accepted, in bytes.</summary>
    public long MaxFileBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>Longest video accepted.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Largest stored frame (display width × height) accepted; 3840×2160 by default.</summary>
    public long MaxPixelsPerFrame { get; init; } = 3840L * 2160;

    /// <summary>Most rgb24 bytes one decode may return (frames × H × W × 3), known before decoding.</summary>
    public long MaxDecodedBytes { get; init; } = 1024L * 1024 * 1024;

    /// <summary>Wall-clock budget for one ffprobe or ffmpeg run.</summary>
    public TimeSpan ProcessTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>The stricter of each pair: a request can narrow the server's limits, never widen them.</summary>
    public VideoLimits Tighten(VideoLimits? request) => request is null
        ? this
        : new VideoLimits
        {
            MaxFileBytes = Math.Min(MaxFileBytes, request.MaxFileBytes),
            MaxDuration = MaxDuration < request.MaxDuration ? MaxDuration : request.MaxDuration,
            MaxPixelsPerFrame = Math.Min(MaxPixelsPerFrame, request.MaxPixelsPerFrame),
            MaxDecodedBytes = Math.Min(MaxDecodedBytes, request.MaxDecodedBytes),
            ProcessTimeout = ProcessTimeout < request.ProcessTimeout ? ProcessTimeout : request.ProcessTimeout,
        };

    internal void CheckFile(long bytes)
    {
        if (bytes > MaxFileBytes)
        {
            throw new LimitExceededException(Limit.FileSize, bytes, MaxFileBytes);
        }
    }

    internal void CheckMedia(MediaInfo media)
    {
        if (media.Duration > MaxDuration)
        {
            throw new LimitExceededException(Limit.Duration, media.Duration.TotalSeconds, MaxDuration.TotalSeconds);
        }

        long pixels = (long)media.Width * media.Height;
        if (pixels > MaxPixelsPerFrame)
        {
            throw new LimitExceededException(Limit.PixelsPerFrame, pixels, MaxPixelsPerFrame);
        }
    }

    internal void CheckDecodedBytes(long bytes)
    {
        if (bytes > MaxDecodedBytes)
        {
            throw new LimitExceededException(Limit.DecodedBytes, bytes, MaxDecodedBytes);
        }
    }
}
