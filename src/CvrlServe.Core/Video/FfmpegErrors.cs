namespace CvrlServe.Core.Video;

/// <summary>Reads ffprobe/ffmpeg stderr to tell "not a video we accept" from "a video, but broken". Pure.</summary>
public static class FfmpegErrors
{
    /// <summary>Lines kept from stderr for error messages.</summary>
    public const int TailLines = 12;

    /// <summary>The last <see cref="TailLines"/> non-empty lines.</summary>
    public static IReadOnlyList<string> Tail(IEnumerable<string>? lines) =>
        lines?.Where(l => !string.IsNullOrWhiteSpace(l)).TakeLast(TailLines).ToArray() ?? [];

    /// <summary>
    /// When ffprobe fails on a file: unsupported if the format was refused by the allowlist or the file
    /// does not start like any accepted container (text renamed .mp4 fails in the mp4 demuxer just like a
    /// truncated mp4 does, so stderr alone cannot tell them apart); corrupt if it does start like one
    /// (e.g. an mp4 cut before its moov atom).
    /// </summary>
    public static CvrlException ClassifyProbeFailure(string fileName, ReadOnlySpan<byte> head, IReadOnlyList<string> stderr, Exception? inner = null)
    {
        ArgumentNullException.ThrowIfNull(stderr);
        var tail = Tail(stderr);
        if (tail.Any(l => l.Contains("Codec (", StringComparison.Ordinal) && l.Contains("not on whitelist", StringComparison.OrdinalIgnoreCase)))
        {
            return new UnsupportedMediaException("The file holds a stream in a codec that is not accepted here.", tail, $"file '{fileName}'", inner);
        }

        if (tail.Any(l => l.Contains("not on whitelist", StringComparison.OrdinalIgnoreCase)))
        {
            return new UnsupportedMediaException("The file is in a container format that is not accepted (playlists and concat lists are refused).", tail, $"file '{fileName}'", inner);
        }

        return LooksLikeContainer(head)
            ? new CorruptVideoException("The file is a video container that could not be read: it may be truncated or corrupt.", tail, $"file '{fileName}'", inner)
            : new UnsupportedMediaException("The file is not a video format that is accepted here.", tail, $"file '{fileName}'", inner);
    }

    /// <summary>Whether the first bytes carry the signature of a container on the default allowlist.</summary>
    public static bool LooksLikeContainer(ReadOnlySpan<byte> head)
    {
        if (head.Length >= 8 && head[4..8].SequenceEqual("ftyp"u8) || head.Length >= 8 && (head[4..8].SequenceEqual("moov"u8)
            || head[4..8].SequenceEqual("mdat"u8) || head[4..8].SequenceEqual("free"u8) || head[4..8].SequenceEqual("wide"u8)))
        {
            return true; // ISO BMFF / QuickTime
        }

        return head.StartsWith((ReadOnlySpan<byte>)[0x1A, 0x45, 0xDF, 0xA3]) // Matroska / WebM
            || (head.Length >= 12 && head.StartsWith("RIFF"u8) && head[8..12].SequenceEqual("AVI "u8))
            || head.StartsWith("FLV"u8)
            || head.StartsWith("OggS"u8)
            || head.StartsWith("GIF8"u8)
            || head.StartsWith((ReadOnlySpan<byte>)[0x00, 0x00, 0x01, 0xBA]) // MPEG program stream
            || head.StartsWith((ReadOnlySpan<byte>)[0x30, 0x26, 0xB2, 0x75]) // ASF
            || (head.Length > 188 && head[0] == 0x47 && head[188] == 0x47); // MPEG transport stream
    }
}
