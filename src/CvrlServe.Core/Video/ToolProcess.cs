using System.ComponentModel;
using System.Diagnostics;
using System.Text;

namespace CvrlServe.Core.Video;

/// <summary>How a tool run ended: its exit code, the end of its stderr, and stdout bytes nobody read.</summary>
public sealed record ToolResult(int ExitCode, IReadOnlyList<string> StderrTail, long UnreadStdoutBytes);

/// <summary>
/// The one way the project runs ffmpeg and ffprobe (and the tests and tools run them too). Arguments go
/// to the process as a list (<see cref="ProcessStartInfo.ArgumentList"/>), never joined into one command
/// string, so no path or value can become another argument. Stdin is closed; stdout goes to the caller's
/// reader and whatever it leaves is drained and counted; only the last <see cref="MaxStderrChars"/>
/// characters of stderr are kept. A deadline or a cancellation kills the whole process tree, and every
/// run waits for its process to exit: none is left behind, whatever happens.
/// </summary>
public static class ToolProcess
{
    /// <summary>Characters of stderr kept (the tail); the rest is read and dropped.</summary>
    public const int MaxStderrChars = 16 * 1024;

    /// <summary>
    /// Runs <paramref name="fileName"/> with <paramref name="arguments"/>. <paramref name="readStdout"/>
    /// (optional) reads stdout; an exception from it kills the process and propagates. Past
    /// <paramref name="timeout"/> the process is killed and <see cref="DeadlineExceededException"/> is
    /// thrown; a cancelled <paramref name="cancellationToken"/> kills it and throws
    /// <see cref="OperationCanceledException"/>.
    /// </summary>
    public static async Task<ToolResult> RunAsync(
        string fileName,
        IReadOnlyList<string> arguments,
        Func<Stream, CancellationToken, Task>? readStdout,
        TimeSpan timeout,
        string operation,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(arguments);
        if (timeout <= TimeSpan.Zero)
        {
            throw new InvalidRequestException($"The timeout must be positive (got {timeout}).");
        }

        var start = new ProcessStartInfo(fileName)
        {
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            CreateNoWindow = true,
            StandardErrorEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = new Process { StartInfo = start };
        try
        {
            process.Start();
        }
        catch (Win32Exception e)
        {
            throw new InvalidOperationException($"Could not start '{fileName}' ({e.Message}): is it installed (apt-get install ffmpeg)?", e);
        }

        using var deadline = new CancellationTokenSource(timeout);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, deadline.Token);
        using var kill = linked.Token.Register(() => Kill(process));
        try
        {
            process.StandardInput.Close();
            var stderr = ReadTailAsync(process.StandardError);
            long unread;
            try
            {
                unread = await ReadStdoutAsync(process.StandardOutput.BaseStream, readStdout, linked.Token);
            }
            catch
            {
                Kill(process); // at once: a reader that gave up must not wait for the tool to finish
                throw;
            }

            var tail = await stderr;
            await process.WaitForExitAsync(CancellationToken.None);
            if (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
            {
                throw new DeadlineExceededException(operation, timeout, $"{Path.GetFileName(fileName)} killed after {timeout}");
            }

            cancellationToken.ThrowIfCancellationRequested();
            return new ToolResult(process.ExitCode, tail, unread);
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new DeadlineExceededException(operation, timeout, $"{Path.GetFileName(fileName)} killed after {timeout}");
        }
        finally
        {
            Kill(process);
            await process.WaitForExitAsync(CancellationToken.None);
        }
    }

    /// <summary>Reads a stream to its end into memory, refusing more than <paramref name="maxBytes"/>.</summary>
    public static async Task<byte[]> ReadCappedAsync(Stream stream, int maxBytes, Func<Exception> tooLong, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(stream);
        ArgumentNullException.ThrowIfNull(tooLong);
        using var memory = new MemoryStream();
        var buffer = new byte[16 * 1024];
        int read;
        while ((read = await stream.ReadAsync(buffer, cancellationToken)) > 0)
        {
            if (memory.Length + read > maxBytes)
            {
                throw tooLong();
            }

            memory.Write(buffer, 0, read);
        }

        return memory.ToArray();
    }

    private static async Task<long> ReadStdoutAsync(Stream stdout, Func<Stream, CancellationToken, Task>? readStdout, CancellationToken cancellationToken)
    {
        if (readStdout is not null)
        {
            await readStdout(stdout, cancellationToken);
        }

        // Whatever the reader left is drained so the tool never blocks on a full pipe, and counted.
        long unread = 0;
        var scratch = new byte[64 * 1024];
        int n;
        while ((n = await stdout.ReadAsync(scratch, cancellationToken)) > 0)
        {
            unread += n;
        }

        return unread;
    }

    private static async Task<IReadOnlyList<string>> ReadTailAsync(StreamReader stderr)
    {
        var tail = new StringBuilder();
        var buffer = new char[4096];
        int read;
        while ((read = await stderr.ReadAsync(buffer, CancellationToken.None)) > 0)
        {
            tail.Append(buffer, 0, read);
            if (tail.Length > 2 * MaxStderrChars)
            {
                tail.Remove(0, tail.Length - MaxStderrChars);
            }
        }

        if (tail.Length > MaxStderrChars)
        {
            tail.Remove(0, tail.Length - MaxStderrChars);
        }

        return FfmpegErrors.Tail(tail.ToString().Split('\n'));
    }

    private static void Kill(Process process)
    {
        try
        {
            if (!process.HasExited)
            {
                process.Kill(entireProcessTree: true);
            }
        }
        catch (Exception e) when (e is InvalidOperationException or Win32Exception or NotSupportedException)
        {
            // Already exited, or never started.
        }
    }
}
