namespace CvrlServe.Core;

/// <summary>
/// What went wrong, in the terms a host maps to a response: the API turns each kind into one HTTP status
/// in one place, the CLI into a message and an exit code.
/// </summary>
public enum ErrorKind
{
    /// <summary>The request itself is wrong (a bad name, a non-positive limit, a probe of another model).</summary>
    InvalidArgument,

    /// <summary>The video, model or probe named does not exist.</summary>
    NotFound,

    /// <summary>Not a video accepted here: not media, audio only, a refused container.</summary>
    UnsupportedMedia,

    /// <summary>A video (or model file) that looks right but cannot be read whole.</summary>
    Corrupt,

    /// <summary>A configured limit was exceeded; <see cref="LimitExceededException"/> says which.</summary>
    LimitExceeded,

    /// <summary>The work ran past its deadline and was stopped.</summary>
    Timeout,

    /// <summary>The service is busy: try again after <see cref="OverloadedException.RetryAfter"/>.</summary>
    Overloaded,

    /// <summary>The model exists but is not (yet, or no longer) able to serve.</summary>
    NotReady,
}

/// <summary>
/// Base of every error Core raises for something a caller sent or asked for. <see cref="Exception.Message"/>
/// is safe to show a client: it names no server path, process address or native-library text. Everything
/// a person debugging the server needs (paths, ffmpeg's stderr, ONNX Runtime's words) is in
/// <see cref="Detail"/>, which goes to logs only.
/// </summary>
public abstract class CvrlException : Exception
{
    protected CvrlException(ErrorKind kind, string message, string? detail = null, Exception? inner = null)
        : base(message, inner)
    {
        Kind = kind;
        Detail = detail;
    }

    public ErrorKind Kind { get; }

    /// <summary>Diagnostics for logs (paths, tool output); never sent to a client.</summary>
    public string? Detail { get; }

    public override string ToString() => Detail is null ? base.ToString() : $"{base.ToString()}{Environment.NewLine}Detail: {Detail}";
}

/// <summary>A request that cannot be served as asked: the message says what to change.</summary>
public sealed class InvalidRequestException(string message, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.InvalidArgument, message, detail, inner);

/// <summary>Which limit a request or an input ran into.</summary>
public enum Limit
{
    /// <summary>Bytes of the uploaded file.</summary>
    FileSize,

    /// <summary>Seconds of video.</summary>
    Duration,

    /// <summary>Pixels of one stored frame.</summary>
    PixelsPerFrame,

    /// <summary>Long side over short side of the frame.</summary>
    AspectRatio,

    /// <summary>Frames one request decodes (after the plan).</summary>
    Frames,

    /// <summary>Bytes one request holds while decoding and embedding (frames, views, float tensors).</summary>
    DecodedBytes,

    /// <summary>Bytes of clips waiting for inference.</summary>
    QueuedBytes,
}

/// <summary>A limit was exceeded; which one, by how much, and in what unit, as data.</summary>
public sealed class LimitExceededException : CvrlException
{
    public LimitExceededException(Limit limit, double actual, double maximum, string? detail = null)
        : base(ErrorKind.LimitExceeded, $"The {Describe(limit)} limit was exceeded: {actual:G6} > {maximum:G6} {UnitOf(limit)}.", detail)
    {
        Limit = limit;
        Actual = actual;
        Maximum = maximum;
    }

    public Limit Limit { get; }

    public double Actual { get; }

    public double Maximum { get; }

    /// <summary>What <see cref="Actual"/> and <see cref="Maximum"/> count: bytes, seconds, pixels, frames or a ratio.</summary>
    public string Unit => UnitOf(Limit);

    public static string UnitOf(Limit limit) => limit switch
    {
        Limit.FileSize or Limit.DecodedBytes or Limit.QueuedBytes => "bytes",
        Limit.Duration => "seconds",
        Limit.PixelsPerFrame => "pixels",
        Limit.Frames => "frames",
        _ => "ratio",
    };

    private static string Describe(Limit limit) => limit switch
    {
        Limit.FileSize => "file size",
        Limit.Duration => "duration",
        Limit.PixelsPerFrame => "pixels per frame",
        Limit.AspectRatio => "aspect ratio",
        Limit.Frames => "frames per request",
        Limit.DecodedBytes => "decoded bytes",
        _ => "queued bytes",
    };
}

/// <summary>The service is busy: the client should retry after <see cref="RetryAfter"/>.</summary>
public sealed class OverloadedException(string what, TimeSpan retryAfter, string? detail = null)
    : CvrlException(ErrorKind.Overloaded, $"The service is busy ({what}). Retry in {Math.Max(1, Math.Ceiling(retryAfter.TotalSeconds)):F0} s.", detail)
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>The work ran past its deadline and was stopped (its processes killed).</summary>
public sealed class DeadlineExceededException(string operation, TimeSpan timeout, string? detail = null)
    : CvrlException(ErrorKind.Timeout, $"{operation} did not finish within {timeout.TotalSeconds:G4} s and was stopped.", detail)
{
    public TimeSpan Timeout { get; } = timeout;
}
