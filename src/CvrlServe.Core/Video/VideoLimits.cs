namespace CvrlServe.Core.Video;

/// <summary>
/// Hard budgets for one request, all checked from the media information before any frame is decoded. A
/// request may carry its own limits; they only ever tighten the reader's (see <see cref="Tighten"/>), and a
/// limit that is zero, negative or infinite is refused rather than read as "none".
/// </summary>
public sealed record VideoLimits
{
    /// <summary>Longest accepted <see cref="ProcessTimeout"/>: a day.</summary>
    public static readonly TimeSpan MaxProcessTimeout = TimeSpan.FromDays(1);

    /// <summary>Largest input file accepted, in bytes.</summary>
    public long MaxFileBytes { get; init; } = 512L * 1024 * 1024;

    /// <summary>Longest video accepted.</summary>
    public TimeSpan MaxDuration { get; init; } = TimeSpan.FromMinutes(30);

    /// <summary>Largest stored frame (display width × height) accepted; 3840×2160 by default.</summary>
    public long MaxPixelsPerFrame { get; init; } = 3840L * 2160;

    /// <summary>
    /// Widest frame accepted, long side over short side. The resize scales the short side to the view's,
    /// so a 4096×16 video would make ffmpeg scale every frame to 32768×128: the widest formats in use are
    /// about 4:1.
    /// </summary>
    public double MaxAspectRatio { get; init; } = 32;

    /// <summary>Most rgb24 bytes one decode may return (frames × H × W × 3), known before decoding.</summary>
    public long MaxDecodedBytes { get; init; } = 1024L * 1024 * 1024;

    /// <summary>Wall-clock budget for one ffprobe run, and for one decode (its read from the start included).</summary>
    public TimeSpan ProcessTimeout { get; init; } = TimeSpan.FromMinutes(2);

    /// <summary>
    /// The stricter of each pair: a request can narrow the server's limits, never widen them. A request
    /// limit that is not positive and finite is an <see cref="InvalidRequestException"/>.
    /// </summary>
    public VideoLimits Tighten(VideoLimits? request)
    {
        if (request is null)
        {
            return this;
        }

        request.Validate();
        return new VideoLimits
        {
            MaxFileBytes = Math.Min(MaxFileBytes, request.MaxFileBytes),
            MaxDuration = MaxDuration < request.MaxDuration ? MaxDuration : request.MaxDuration,
            MaxPixelsPerFrame = Math.Min(MaxPixelsPerFrame, request.MaxPixelsPerFrame),
            MaxAspectRatio = Math.Min(MaxAspectRatio, request.MaxAspectRatio),
            MaxDecodedBytes = Math.Min(MaxDecodedBytes, request.MaxDecodedBytes),
            ProcessTimeout = ProcessTimeout < request.ProcessTimeout ? ProcessTimeout : request.ProcessTimeout,
        };
    }

    /// <summary>Refuses limits that are zero, negative, infinite or not a number, naming each.</summary>
    public void Validate()
    {
        var problems = new List<string>();
        if (MaxFileBytes <= 0)
        {
            problems.Add($"maxFileBytes {MaxFileBytes}");
        }

        if (MaxDuration <= TimeSpan.Zero)
        {
            problems.Add($"maxDuration {MaxDuration}");
        }

        if (MaxPixelsPerFrame <= 0)
        {
            problems.Add($"maxPixelsPerFrame {MaxPixelsPerFrame}");
        }

        if (!(MaxAspectRatio >= 1 && double.IsFinite(MaxAspectRatio)))
        {
            problems.Add($"maxAspectRatio {MaxAspectRatio} (at least 1)");
        }

        if (MaxDecodedBytes <= 0)
        {
            problems.Add($"maxDecodedBytes {MaxDecodedBytes}");
        }

        if (ProcessTimeout <= TimeSpan.Zero || ProcessTimeout > MaxProcessTimeout)
        {
            problems.Add($"processTimeout {ProcessTimeout} (must be in (0, 1 day])");
        }

        if (problems.Count > 0)
        {
            throw new InvalidRequestException($"Limits must be positive and finite: {string.Join(", ", problems)}.");
        }
    }

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

        if (media.Width > 0 && media.Height > 0)
        {
            double aspect = (double)Math.Max(media.Width, media.Height) / Math.Min(media.Width, media.Height);
            if (aspect > MaxAspectRatio)
            {
                throw new LimitExceededException(Limit.AspectRatio, aspect, MaxAspectRatio);
            }
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
