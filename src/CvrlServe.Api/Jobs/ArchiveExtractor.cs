using System.Buffers;
using System.Collections.Frozen;
using System.IO.Compression;
using static CvrlServe.Api.Jobs.ArchiveEntryRules;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// Extracts an uploaded zip of class folders of videos (<c>CLASS/VIDEO.ext</c>, optionally inside one top
/// folder as zipping a folder produces) for probe training. The archive is untrusted: every entry is checked
/// before a byte is written, nothing is ever written under a name taken from the archive, and the bytes
/// actually produced are counted and checked against the entry's declared size and CRC-32, because the
/// sizes an archive declares can lie.
/// </summary>
public static class ArchiveExtractor
{
    /// <summary>The extensions (lower case, with the dot) accepted as videos.</summary>
    public static readonly FrozenSet<string> VideoExtensions = FrozenSet.Create(StringComparer.Ordinal,
        ".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi", ".flv", ".ts", ".mpg", ".mpeg", ".ogv", ".wmv", ".asf", ".gif");

    private const int BufferBytes = 81920;

    /// <summary>
    /// Extracts the videos of the zip at <paramref name="zipPath"/> into <paramref name="destination"/>, which
    /// must be absent or empty (it is created), as <c>{index:D6}{ext}</c> files, in archive order. Directory
    /// entries, <c>__MACOSX/</c> and dot-files are ignored. Throws <see cref="ArchiveRejectedException"/> when the
    /// archive is not a readable zip, has an entry whose contents do not match its header (size or CRC-32),
    /// an unsafe or oddly placed entry, a link or other non-regular entry, an
    /// encrypted entry, a bad class name or extension, fewer than two classes or an empty one, or exceeds
    /// <paramref name="limits"/> (declared or as actually expanded); <see cref="IOException"/> when
    /// <paramref name="destination"/> is a file or a folder with something in it. On any failure, cancellation
    /// included, whatever was written is deleted (and the destination too, when this call created it).
    /// </summary>
    public static async Task<IReadOnlyList<ExtractedVideo>> ExtractAsync(string zipPath, string destination, ArchiveLimits limits, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(zipPath);
        ArgumentException.ThrowIfNullOrWhiteSpace(destination);
        ArgumentNullException.ThrowIfNull(limits);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limits.MaxExpandedBytes);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(limits.MaxEntries);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxClasses, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(limits.MaxCompressionRatio, 1);

        bool created = PrepareDestination(destination);
        try
        {
            await using var file = new FileStream(zipPath, FileMode.Open, FileAccess.Read, FileShare.Read, BufferBytes, FileOptions.Asynchronous);
            await using var archive = await ZipArchive.CreateAsync(file, ZipArchiveMode.Read, leaveOpen: false, entryNameEncoding: null, cancellationToken).ConfigureAwait(false);
            var plan = Plan(archive, limits);
            return await CopyAsync(plan, destination, limits, cancellationToken).ConfigureAwait(false);
        }
        catch (InvalidDataException e)
        {
            // ZipArchive's word for every malformed input: no central directory, a bad header, corrupt
            // compressed data, an unsupported compression method or a split archive.
            Clean(destination, created);
            throw new ArchiveRejectedException(ArchiveRejection.Unreadable, "The upload is not a readable zip archive (corrupt, split, or compressed with an unsupported method).", e.Message, e);
        }
        catch
        {
            Clean(destination, created);
            throw;
        }
    }

    private static List<(ZipArchiveEntry Entry, string Label, string Extension)> Plan(ZipArchive archive, ArchiveLimits limits)
    {
        var entries = archive.Entries;
        if (entries.Count > limits.MaxEntries)
        {
            throw Rejected(ArchiveRejection.TooManyEntries, $"The archive has {entries.Count} entries; at most {limits.MaxEntries} are accepted.");
        }

        var files = new List<(ZipArchiveEntry Entry, string[] Parts)>();
        var folders = new List<string[]>();
        foreach (var entry in entries)
        {
            string name = entry.FullName;
            bool isFolder = name.EndsWith('/');
            string[] parts = CheckName(isFolder ? name[..^1] : name, name);
            CheckType(entry, isFolder);
            if (entry.IsEncrypted)
            {
                throw Rejected(ArchiveRejection.Encrypted, $"'{Echo(name)}' is password-protected; upload an archive without encryption.");
            }

            // Finder's resource forks (__MACOSX/, ._x) and dot-files (.DS_Store) are never part of a dataset.
            if (parts.Contains("__MACOSX", StringComparer.Ordinal) || parts[^1].StartsWith('.'))
            {
                continue;
            }

            if (isFolder)
            {
                folders.Add(parts);
            }
            else
            {
                files.Add((entry, parts));
            }
        }

        string? top = Top(files);
        int depth = top is null ? 2 : 3;
        var plan = new List<(ZipArchiveEntry Entry, string Label, string Extension)>(files.Count);
        long declared = 0;
        foreach (var (entry, parts) in files)
        {
            string label = CheckLabel(parts[^2]);
            string extension = Path.GetExtension(parts[^1]).ToLowerInvariant();
            if (!VideoExtensions.Contains(extension))
            {
                throw Rejected(ArchiveRejection.UnsupportedExtension,
                    $"'{Echo(entry.FullName)}' is not a video this service accepts; accepted extensions: {string.Join(' ', VideoExtensions.Order(StringComparer.Ordinal))}.");
            }

            if (entry.Length > limits.MaxExpandedBytes - declared)
            {
                throw Rejected(ArchiveRejection.TooLarge, $"The archive's videos expand to more than the {limits.MaxExpandedBytes} bytes accepted.");
            }

            declared += entry.Length;
            if (entry.Length > entry.CompressedLength * limits.MaxCompressionRatio)
            {
                throw RatioExceeded(entry, limits);
            }

            plan.Add((entry, label, extension));
        }

        var labels = plan.Select(p => p.Label).Distinct(StringComparer.Ordinal).ToArray();
        var empty = folders.Where(f => f.Length == depth - 1 && (top is null || f[0] == top)).Select(f => f[^1]).FirstOrDefault(f => !labels.Contains(f, StringComparer.Ordinal));
        if (empty is not null)
        {
            throw Rejected(ArchiveRejection.EmptyClass, $"The class folder '{Echo(empty)}' holds no video; remove it or add videos.");
        }

        if (labels.Length < 2 || labels.Length > limits.MaxClasses)
        {
            throw Rejected(ArchiveRejection.ClassCount,
                $"The archive must hold between 2 and {limits.MaxClasses} class folders with videos; it holds {labels.Length}.");
        }

        return plan;
    }

    /// <summary>The one top folder every file is under, or null when files sit directly in class folders.</summary>
    private static string? Top(List<(ZipArchiveEntry Entry, string[] Parts)> files)
    {
        const string Expected = "Lay the archive out as CLASS/VIDEO, optionally inside one top folder (TOP/CLASS/VIDEO).";
        foreach (var (entry, parts) in files)
        {
            if (parts.Length == 1)
            {
                throw Rejected(ArchiveRejection.Layout, $"'{Echo(entry.FullName)}' is not inside a class folder. {Expected}");
            }

            if (parts.Length > 3)
            {
                throw Rejected(ArchiveRejection.Layout, $"'{Echo(entry.FullName)}' is nested too deeply. {Expected}");
            }
        }

        if (files.Count == 0 || files.All(f => f.Parts.Length == 2))
        {
            return null;
        }

        var first = files.FirstOrDefault(f => f.Parts.Length == 3);
        var odd = files.FirstOrDefault(f => f.Parts.Length != 3 || f.Parts[0] != first.Parts[0]);
        return odd.Entry is null
            ? first.Parts[0]
            : throw Rejected(ArchiveRejection.Layout, $"'{Echo(first.Entry.FullName)}' and '{Echo(odd.Entry.FullName)}' are not in the same layout. {Expected}");
    }

    private static async Task<IReadOnlyList<ExtractedVideo>> CopyAsync(List<(ZipArchiveEntry Entry, string Label, string Extension)> plan, string destination, ArchiveLimits limits, CancellationToken cancellationToken)
    {
        var videos = new List<ExtractedVideo>(plan.Count);
        byte[] buffer = ArrayPool<byte>.Shared.Rent(BufferBytes);
        long total = 0;
        try
        {
            for (int i = 0; i < plan.Count; i++)
            {
                var (entry, label, extension) = plan[i];
                string path = Path.Combine(destination, $"{i:D6}{extension}");
                double entryLimit = entry.CompressedLength * limits.MaxCompressionRatio;
                long written = 0;
                uint crc = 0;
                await using var input = await entry.OpenAsync(cancellationToken).ConfigureAwait(false);
                await using var output = new FileStream(path, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1, FileOptions.Asynchronous);
                int read;
                while ((read = await input.ReadAsync(buffer.AsMemory(0, BufferBytes), cancellationToken).ConfigureAwait(false)) > 0)
                {
                    // Counted, not declared: a forged header can claim a small size for a huge stream.
                    written += read;
                    total += read;
                    if (total > limits.MaxExpandedBytes)
                    {
                        throw Rejected(ArchiveRejection.TooLarge, $"The archive's videos expand to more than the {limits.MaxExpandedBytes} bytes accepted (its declared sizes are false).");
                    }

                    if (written > entryLimit)
                    {
                        throw RatioExceeded(entry, limits);
                    }

                    crc = ZipCrc32.Append(crc, buffer.AsSpan(0, read));
                    await output.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                }

                if (written != entry.Length || crc != entry.Crc32)
                {
                    throw Rejected(ArchiveRejection.Unreadable, $"'{Echo(entry.FullName)}' is damaged: its contents do not match its header (size or CRC).");
                }

                videos.Add(new ExtractedVideo(label, path, entry.FullName));
            }
        }
        finally
        {
            ArrayPool<byte>.Shared.Return(buffer);
        }

        return videos;
    }

    /// <summary>Makes sure the destination exists and is empty; true when this call created it.</summary>
    private static bool PrepareDestination(string destination)
    {
        if (File.Exists(destination) || (Directory.Exists(destination) && Directory.EnumerateFileSystemEntries(destination).Any()))
        {
            throw new IOException($"The extraction folder '{destination}' must be absent or empty.");
        }

        bool created = !Directory.Exists(destination);
        Directory.CreateDirectory(destination);
        return created;
    }

    private static void Clean(string destination, bool created)
    {
        try
        {
            if (created)
            {
                Directory.Delete(destination, recursive: true);
                return;
            }

            foreach (string path in Directory.EnumerateFiles(destination))
            {
                File.Delete(path);
            }
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            // The refusal matters more than the leftovers, which sit under a server-chosen name in a
            // folder the caller owns and removes.
        }
    }

    private static ArchiveRejectedException RatioExceeded(ZipArchiveEntry entry, ArchiveLimits limits) =>
        Rejected(ArchiveRejection.CompressionRatio, $"'{Echo(entry.FullName)}' expands to more than {limits.MaxCompressionRatio:G4} times its compressed size; the archive looks like a zip bomb.");
}
