using System.Diagnostics;

namespace SynthMotion;

/// <summary>
/// Encodes rgb24 frames into a real file with ffmpeg through its stdin: H.264 in MP4 or VP9 in WebM, one
/// thread and bit-exact flags so the same frames give the same bytes. Writes to a temporary name and
/// renames, so an interrupted run never leaves a file that looks finished.
/// </summary>
public static class VideoWriter
{
    public static async Task WriteAsync(string path, RenderSettings settings, IEnumerable<byte[]> frames, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(frames);
        bool webm = path.EndsWith(".webm", StringComparison.OrdinalIgnoreCase);
        string temporary = Path.Combine(Path.GetDirectoryName(path)!, $".{Path.GetFileNameWithoutExtension(path)}.tmp{Path.GetExtension(path)}");
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardInput = true, RedirectStandardError = true, UseShellExecute = false };
        string[] arguments =
        [
            "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-video_size", $"{settings.Width}x{settings.Height}", "-framerate", $"{settings.Fps}", "-i", "pipe:0",
            "-threads", "1", "-fflags", "+bitexact", "-flags:v", "+bitexact", "-map_metadata", "-1", "-pix_fmt", "yuv420p",
            .. webm
                ? (string[])["-c:v", "libvpx-vp9", "-crf", "30", "-b:v", "0", "-deadline", "good", "-cpu-used", "4", "-row-mt", "0", "-g", "50"]
                : ["-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-g", "50"],
            "file:" + temporary,
        ];
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start) ?? throw new InvalidOperationException("ffmpeg did not start");
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            var stdin = process.StandardInput.BaseStream;
            foreach (var frame in frames)
            {
                await stdin.WriteAsync(frame, cancellationToken);
            }

            stdin.Close();
            await process.WaitForExitAsync(cancellationToken);
        }
        catch
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }

            File.Delete(temporary);
            throw;
        }

        string errors = await stderr;
        if (process.ExitCode != 0)
        {
            File.Delete(temporary);
            throw new InvalidOperationException($"ffmpeg failed on {path} (exit {process.ExitCode}): {errors.Trim()}");
        }

        File.Move(temporary, path, overwrite: true);
    }
}
