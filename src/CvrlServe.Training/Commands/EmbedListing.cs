using System.Buffers.Binary;
using System.Security.Cryptography;
using System.Text;

namespace CvrlServe.Training.Commands;

/// <summary>One video of a listing: <see cref="Key"/> names it in the output (as the listing wrote it), <see cref="Path"/> is where it is read.</summary>
internal sealed record EmbedItem(string Key, string Path);

/// <summary>A shard of a listing: <c>i/N</c>, or <c>auto/N</c> with i from Kubernetes' <c>JOB_COMPLETION_INDEX</c>.</summary>
internal readonly record struct Shard(int Index, int Count)
{
    public const string IndexVariable = "JOB_COMPLETION_INDEX";

    public static Shard Parse(string text, Func<string, string?> environment)
    {
        string[] parts = text.Split('/');
        if (parts.Length != 2 || !int.TryParse(parts[1], System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int count) || count < 1)
        {
            throw new UsageException($"--shard must be i/N or auto/N with N ≥ 1 (got '{text}').");
        }

        string indexText = parts[0];
        if (indexText == "auto")
        {
            indexText = environment(IndexVariable) ?? throw new UsageException($"--shard auto/N needs {IndexVariable} (set by a Kubernetes Indexed Job).");
        }

        return int.TryParse(indexText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int index) && index < count
            ? new Shard(index, count)
            : throw new UsageException($"The shard index must be a whole number in [0, {count - 1}] (got '{indexText}').");
    }

    /// <summary>
    /// The shard a key belongs to: the first 8 bytes of SHA-256(UTF-8 key), big-endian, modulo N. A hash of
    /// the key rather than its position, so the split is the same whatever order the listing came in and a
    /// video keeps its shard when others are added to the folder (a resumed shard's output stays valid).
    /// </summary>
    public static int Of(string key, int count) =>
        (int)(BinaryPrimitives.ReadUInt64BigEndian(SHA256.HashData(Encoding.UTF8.GetBytes(key))) % (ulong)count);

    public bool Holds(string key) => Of(key, Count) == Index;
}

/// <summary>What <c>cvrl embed</c> embeds: positional paths, a list file, or a folder, without duplicates.</summary>
internal static class EmbedListing
{
    /// <summary>The file names a folder listing takes as videos (case-insensitive).</summary>
    public static readonly IReadOnlySet<string> VideoExtensions = new HashSet<string>(StringComparer.OrdinalIgnoreCase)
    {
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".ogv", ".flv", ".wmv", ".3gp",
    };

    /// <summary>Every video under <paramref name="folder"/> (recursively, hidden files skipped), keyed by its path relative to it with '/', ordinal order.</summary>
    public static IReadOnlyList<EmbedItem> FromFolder(string folder)
    {
        if (!Directory.Exists(folder))
        {
            throw new UsageException($"--folder: no such folder '{folder}'.");
        }

        var options = new EnumerationOptions { RecurseSubdirectories = true, IgnoreInaccessible = true, AttributesToSkip = FileAttributes.Hidden | FileAttributes.System };
        return Directory.EnumerateFiles(folder, "*", options)
            .Where(f => VideoExtensions.Contains(System.IO.Path.GetExtension(f)))
            .Select(f => new EmbedItem(System.IO.Path.GetRelativePath(folder, f).Replace('\\', '/'), f))
            .OrderBy(i => i.Key, StringComparer.Ordinal)
            .ToArray();
    }

    /// <summary>One path per line (blank lines and <c>#</c> comments skipped); relative paths are relative to the list's folder.</summary>
    public static IReadOnlyList<EmbedItem> FromList(string listFile)
    {
        if (!File.Exists(listFile))
        {
            throw new UsageException($"--list: no such file '{listFile}'.");
        }

        string folder = System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(listFile))!;
        return Distinct(File.ReadLines(listFile)
            .Select(l => l.Trim())
            .Where(l => l.Length > 0 && !l.StartsWith('#'))
            .Select(l => new EmbedItem(l, System.IO.Path.IsPathRooted(l) ? l : System.IO.Path.Combine(folder, l))));
    }

    public static IReadOnlyList<EmbedItem> FromArguments(IEnumerable<string> paths) => Distinct(paths.Select(p => new EmbedItem(p, p)));

    private static EmbedItem[] Distinct(IEnumerable<EmbedItem> items) => items.DistinctBy(i => i.Key, StringComparer.Ordinal).ToArray();
}
