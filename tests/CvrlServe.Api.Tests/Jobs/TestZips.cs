using System.Buffers.Binary;
using System.IO.Compression;
using System.Text;

namespace CvrlServe.Api.Tests.Jobs;

/// <summary>One entry of a test archive; a name ending in '/' is a folder.</summary>
internal sealed record ZipItem(string Name, byte[]? Data = null, int? UnixMode = null, CompressionLevel Level = CompressionLevel.Optimal);

/// <summary>Builds zip files for tests, including ones whose headers lie, which ZipArchive itself never writes.</summary>
internal static class TestZips
{
    private const uint CentralHeader = 0x02014b50;

    public static byte[] Build(IEnumerable<ZipItem> items)
    {
        using var memory = new MemoryStream();
        using (var archive = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var item in items)
            {
                var entry = archive.CreateEntry(item.Name, item.Level);
                if (item.UnixMode is int mode)
                {
                    entry.ExternalAttributes = mode << 16;
                }

                if (item.Data is not null)
                {
                    using var stream = entry.Open();
                    stream.Write(item.Data);
                }
            }
        }

        return memory.ToArray();
    }

    /// <summary>Deterministic bytes that do not compress, standing in for a video.</summary>
    public static byte[] Video(int seed, int length = 4096)
    {
        byte[] bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    /// <summary>Two classes of two videos each, under <paramref name="top"/> (e.g. "dataset/") or at the root.</summary>
    public static List<ZipItem> TwoClasses(string top = "") =>
    [
        new($"{top}cat/a.mp4", Video(1)),
        new($"{top}cat/b.MOV", Video(2)),
        new($"{top}dog/c.webm", Video(3)),
        new($"{top}dog/d.mp4", Video(4)),
    ];

    /// <summary>Rewrites the uncompressed size an entry declares, in its central and local headers.</summary>
    public static void DeclareLength(byte[] zip, string name, uint length) =>
        Patch(zip, name, central => BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(central + 24), length), local => BinaryPrimitives.WriteUInt32LittleEndian(zip.AsSpan(local + 22), length));

    /// <summary>Sets the "encrypted" flag of an entry (general purpose bit 0), as a password-protecting zipper would.</summary>
    public static void MarkEncrypted(byte[] zip, string name) =>
        Patch(zip, name, central => zip[central + 8] |= 1, local => zip[local + 6] |= 1);

    private static void Patch(byte[] zip, string name, Action<int> central, Action<int> local)
    {
        byte[] wanted = Encoding.UTF8.GetBytes(name);
        for (int at = 0; at + 46 <= zip.Length; at++)
        {
            if (BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at)) != CentralHeader)
            {
                continue;
            }

            int nameLength = BinaryPrimitives.ReadUInt16LittleEndian(zip.AsSpan(at + 28));
            if (zip.AsSpan(at + 46, nameLength).SequenceEqual(wanted))
            {
                central(at);
                local((int)BinaryPrimitives.ReadUInt32LittleEndian(zip.AsSpan(at + 42)));
                return;
            }
        }

        throw new InvalidOperationException($"No central header for '{name}'.");
    }
}
