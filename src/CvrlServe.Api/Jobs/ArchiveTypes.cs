using CvrlServe.Core;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// What one uploaded archive may expand to. <see cref="MaxExpandedBytes"/> caps the bytes actually written for
/// all videos together; <see cref="MaxCompressionRatio"/> caps each video's bytes against its compressed size
/// (a zip bomb's signature); <see cref="MaxEntries"/> counts every entry, folders and junk included.
/// </summary>
public sealed record ArchiveLimits(long MaxExpandedBytes, int MaxEntries, int MaxClasses = 1000, double MaxCompressionRatio = 200);

/// <summary>
/// One video taken from an archive: its class, where it now lies (a name the server made up, under the
/// destination folder) and its name inside the archive, for messages about it.
/// </summary>
public sealed record ExtractedVideo(string Label, string Path, string OriginalName);

/// <summary>Why an archive was refused, for a host or a test that must not read the message.</summary>
public enum ArchiveRejection
{
    /// <summary>Not a zip archive, one that cannot be read (corrupt, unsupported compression), or an entry whose contents do not match its header.</summary>
    Unreadable,

    /// <summary>An entry name that could escape the destination or is not a plain relative path.</summary>
    UnsafeName,

    /// <summary>A symbolic link, device or other entry that is not a regular file or folder.</summary>
    NotARegularFile,

    /// <summary>A password-protected entry.</summary>
    Encrypted,

    /// <summary>More entries than <see cref="ArchiveLimits.MaxEntries"/>.</summary>
    TooManyEntries,

    /// <summary>More bytes, declared or actually written, than <see cref="ArchiveLimits.MaxExpandedBytes"/>.</summary>
    TooLarge,

    /// <summary>An entry expanding past <see cref="ArchiveLimits.MaxCompressionRatio"/> times its compressed size.</summary>
    CompressionRatio,

    /// <summary>Files not laid out as CLASS/VIDEO (optionally under one top folder).</summary>
    Layout,

    /// <summary>A class folder name that is not an accepted label.</summary>
    InvalidLabel,

    /// <summary>A file whose extension is not one of <see cref="ArchiveExtractor.VideoExtensions"/>.</summary>
    UnsupportedExtension,

    /// <summary>Fewer than two classes hold videos, or more than <see cref="ArchiveLimits.MaxClasses"/> do.</summary>
    ClassCount,

    /// <summary>A class folder with no video in it.</summary>
    EmptyClass,
}

/// <summary>
/// An uploaded archive was refused; nothing of it is left on disk. The message says what to change and names
/// at most entries of the archive itself, never a server path; <see cref="CvrlException.Detail"/> may.
/// </summary>
public sealed class ArchiveRejectedException(ArchiveRejection reason, string message, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.InvalidArgument, message, detail, inner)
{
    public ArchiveRejection Reason { get; } = reason;
}
