namespace CvrlServe.Core.Video;

/// <summary>Base of every error Core.Video raises for a video it was given; the API maps each kind to a status.</summary>
public abstract class VideoException : Exception
{
    protected VideoException(string message, Exception? inner = null) : base(message, inner) { }
}

/// <summary>The file is not a video we accept: not media at all, audio only, or a container outside the allowlist.</summary>
public sealed class UnsupportedMediaException : VideoException
{
    public UnsupportedMediaException(string message, IReadOnlyList<string>? stderrTail = null, Exception? inner = null)
        : base(message, inner) => StderrTail = stderrTail ?? [];

    /// <summary>The last lines ffprobe or ffmpeg wrote, when a tool run led to this verdict.</summary>
    public IReadOnlyList<string> StderrTail { get; }
}

/// <summary>The file looked like a video but ffmpeg could not decode the frames that were asked for.</summary>
public sealed class CorruptVideoException : VideoException
{
    public CorruptVideoException(string message, IReadOnlyList<string> stderrTail, Exception? inner = null)
        : base(message, inner) => StderrTail = stderrTail;

    /// <summary>The last lines ffmpeg wrote to stderr.</summary>
    public IReadOnlyList<string> StderrTail { get; }
}

/// <summary>A limit (file size, duration, frame size, decoded bytes) was exceeded; checked before decoding.</summary>
public sealed class VideoLimitExceededException : VideoException
{
    public VideoLimitExceededException(string limit, double actual, double maximum)
        : base($"The video exceeds the {limit} limit: {actual:G6} > {maximum:G6}.")
    {
        Limit = limit;
        Actual = actual;
        Maximum = maximum;
    }

    /// <summary>Which limit: one of the constants on <see cref="VideoLimits"/>.</summary>
    public string Limit { get; }

    public double Actual { get; }

    public double Maximum { get; }
}

/// <summary>ffprobe or ffmpeg ran longer than the configured timeout and was killed.</summary>
public sealed class VideoTimeoutException : VideoException
{
    public VideoTimeoutException(string operation, TimeSpan timeout)
        : base($"{operation} did not finish within {timeout.TotalSeconds:G4} s and was stopped.") => Timeout = timeout;

    public TimeSpan Timeout { get; }
}
