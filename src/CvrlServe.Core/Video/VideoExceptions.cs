namespace CvrlServe.Core.Video;

/// <summary>The file is not a video we accept: not media at all, audio only, or a container outside the allowlist.</summary>
public sealed class UnsupportedMediaException(string message, IReadOnlyList<string>? stderrTail = null, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.UnsupportedMedia, message, WithTail(detail, stderrTail), inner)
{
    /// <summary>The last lines ffprobe or ffmpeg wrote, when a tool run led to this verdict (for logs).</summary>
    public IReadOnlyList<string> StderrTail { get; } = stderrTail ?? [];

    internal static string? WithTail(string? detail, IReadOnlyList<string>? tail) =>
        tail is not { Count: > 0 } ? detail : $"{detail}{(detail is null ? "" : "\n")}stderr:\n{string.Join('\n', tail)}";
}

/// <summary>The file looked like a video but ffmpeg could not decode the frames that were asked for.</summary>
public sealed class CorruptVideoException(string message, IReadOnlyList<string> stderrTail, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.Corrupt, message, UnsupportedMediaException.WithTail(detail, stderrTail), inner)
{
    /// <summary>The last lines ffmpeg wrote to stderr (for logs).</summary>
    public IReadOnlyList<string> StderrTail { get; } = stderrTail;
}

/// <summary>No file at the path given.</summary>
public sealed class VideoNotFoundException(string path)
    : CvrlException(ErrorKind.NotFound, "The video does not exist.", $"no file at '{path}'")
{
    public string Path { get; } = path;
}
