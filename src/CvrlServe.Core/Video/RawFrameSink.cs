using FFMpegCore.Pipes;

namespace CvrlServe.Core.Video;

/// <summary>
/// Reads ffmpeg's rgb24 output straight into a buffer sized from the plan. Whatever ffmpeg writes past
/// the end is drained (so ffmpeg never blocks on a full pipe) and counted, never stored.
/// </summary>
internal sealed class RawFrameSink(byte[] buffer) : IPipeSink
{
    /// <summary>Bytes ffmpeg wrote, including any beyond the buffer.</summary>
    public long BytesWritten { get; private set; }

    public string GetStreamArguments() => "-f rawvideo";

    public async Task ReadAsync(Stream inputStream, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(inputStream);
        int filled = 0;
        while (filled < buffer.Length)
        {
            int n = await inputStream.ReadAsync(buffer.AsMemory(filled), cancellationToken);
            if (n == 0)
            {
                BytesWritten = filled;
                return;
            }

            filled += n;
        }

        long extra = 0;
        var scratch = new byte[64 * 1024];
        int read;
        while ((read = await inputStream.ReadAsync(scratch, cancellationToken)) > 0)
        {
            extra += read;
        }

        BytesWritten = filled + extra;
    }
}
