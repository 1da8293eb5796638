namespace CvrlServe.Api.Jobs;

/// <summary>
/// The CRC-32 a zip records for each entry (IEEE polynomial, reflected). ZipArchive stops a deflated entry at
/// the size its header declares and checks no CRC, so a forged header would otherwise pass a truncated or
/// altered file off as whole; System.IO.Hashing is not part of the shared framework.
/// </summary>
internal static class ZipCrc32
{
    private static readonly uint[] Table = Enumerable.Range(0, 256).Select(n =>
    {
        uint c = (uint)n;
        for (int k = 0; k < 8; k++)
        {
            c = (c & 1) != 0 ? 0xEDB88320u ^ (c >> 1) : c >> 1;
        }

        return c;
    }).ToArray();

    /// <summary>The CRC of everything hashed so far followed by <paramref name="data"/>; start from 0.</summary>
    public static uint Append(uint crc, ReadOnlySpan<byte> data)
    {
        crc = ~crc;
        foreach (byte b in data)
        {
            crc = Table[(crc ^ b) & 0xFF] ^ (crc >> 8);
        }

        return ~crc;
    }
}
