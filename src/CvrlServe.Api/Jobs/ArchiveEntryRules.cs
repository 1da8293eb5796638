using System.IO.Compression;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// What <see cref="ArchiveExtractor"/> accepts of one entry: a plain relative name, a regular file or folder,
/// a class folder name usable as a label. Each check throws <see cref="ArchiveRejectedException"/>.
/// </summary>
internal static class ArchiveEntryRules
{
    public const int MaxLabelLength = 100;

    private const int MaxEchoedName = 120;
    private const int UnixFileTypeMask = 0xF000;
    private const int UnixRegularFile = 0x8000;
    private const int UnixDirectory = 0x4000;
    private const int UnixSymbolicLink = 0xA000;

    /// <summary>The path's segments, when it is a plain relative path with nothing that could climb out or confuse a file system.</summary>
    internal static string[] CheckName(string path, string name)
    {
        if (name.Any(c => char.IsControl(c)))
        {
            throw Rejected(ArchiveRejection.UnsafeName, "An entry name contains a control character.");
        }

        string? problem =
            name.Contains('\\', StringComparison.Ordinal) ? "contains a backslash" :
            name.StartsWith('/') ? "is an absolute path" :
            name.Length >= 2 && char.IsAsciiLetter(name[0]) && name[1] == ':' ? "starts with a drive letter" :
            null;
        string[] parts = path.Split('/');
        problem ??= parts.Any(p => p is "..") ? "climbs out of its folder ('..')" :
            parts.Any(p => p is "" or ".") ? "has an empty or '.' path segment" :
            null;
        return problem is null ? parts : throw Rejected(ArchiveRejection.UnsafeName, $"The entry '{Echo(name)}' {problem}; the archive is refused.");
    }

    /// <summary>Passes regular files and folders (and entries with no Unix mode); refuses links, devices, pipes.</summary>
    internal static void CheckType(ZipArchiveEntry entry, bool isFolder)
    {
        // Archives made on Unix keep the file mode in the high 16 bits; elsewhere they are zero.
        int type = (entry.ExternalAttributes >> 16) & UnixFileTypeMask;
        if (type == UnixSymbolicLink)
        {
            throw Rejected(ArchiveRejection.NotARegularFile, $"'{Echo(entry.FullName)}' is a symbolic link; links are refused.");
        }

        if (type != 0 && type != UnixRegularFile && !(isFolder && type == UnixDirectory))
        {
            throw Rejected(ArchiveRejection.NotARegularFile, $"'{Echo(entry.FullName)}' is not a regular file.");
        }
    }

    /// <summary>The class folder name as a label, when it is one a probe, a file name and a JSON reader all take as is.</summary>
    internal static string CheckLabel(string label)
    {
        bool valid = label.Length is > 0 and <= MaxLabelLength
            && label[0] is not ('.' or ' ') && label[^1] != ' '
            && label.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or ' ' or '.');
        return valid ? label : throw Rejected(ArchiveRejection.InvalidLabel,
            $"The class folder '{Echo(label)}' is not a valid label: use 1 to {MaxLabelLength} ASCII letters, digits, '-', '_', '.' or inner spaces, not starting with '.'.");
    }

    internal static ArchiveRejectedException Rejected(ArchiveRejection reason, string message) => new(reason, message);

    /// <summary>An archive's own name, shortened, for a message; callers pass only names free of control characters.</summary>
    internal static string Echo(string name) => name.Length <= MaxEchoedName ? name : string.Concat(name.AsSpan(0, MaxEchoedName), "…");
}
