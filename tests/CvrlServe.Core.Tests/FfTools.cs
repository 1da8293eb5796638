using System.Diagnostics;
using System.Globalization;
using System.Text.Json;

namespace CvrlServe.Core.Tests;

/// <summary>
/// The ffmpeg and ffprobe CLIs run directly by tests, apart from the code under test, to make fixtures
/// and to learn the truth about a file (its timestamps, its pixels). Arguments go through
/// <see cref="ProcessStartInfo.ArgumentList"/>, so no file name is ever re-parsed as options.
/// </summary>
internal static class FfTools
{
    /// <summary>Runs ffmpeg with <paramref name="arguments"/>; throws with its stderr when it fails.</summary>
    public static void Ffmpeg(params string[] arguments) => Run("ffmpeg", ["-nostdin", "-hide_banner", "-loglevel", "error", "-y", .. arguments]);

    /// <summary>Runs ffprobe with JSON output and returns the parsed document.</summary>
    public static JsonDocument ProbeJson(string path, params string[] arguments) =>
        JsonDocument.Parse(Run("ffprobe", ["-v", "error", "-of", "json", .. arguments, "--", path]).Stdout);

    /// <summary>Runs <paramref name="tool"/>; returns its exit code, stdout and stderr without throwing.</summary>
    public static (int ExitCode, byte[] Stdout, string Stderr) TryRun(string tool, IEnumerable<string> arguments, TimeSpan? timeout = null)
    {
        var start = new ProcessStartInfo(tool)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        using var stdout = new MemoryStream();
        var copy = process.StandardOutput.BaseStream.CopyToAsync(stdout);
        var stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(timeout ?? TimeSpan.FromMinutes(2)))
        {
            process.Kill(entireProcessTree: true);
            process.WaitForExit();
            return (-1, [], $"{tool} ran past its time limit");
        }

        copy.Wait();
        return (process.ExitCode, stdout.ToArray(), stderr.Result);
    }

    /// <summary>Every frame of the first video stream as rgb24, in the order the decoder presents them (no frame dropped or repeated).</summary>
    public static byte[] DecodeAllRgb(string path) =>
        Run("ffmpeg", ["-nostdin", "-v", "error", "-i", path, "-map", "0:v:0", "-fps_mode", "passthrough", "-f", "rawvideo", "-pix_fmt", "rgb24", "pipe:1"]).Stdout;

    /// <summary>A string field of a JSON object, or "N/A" when ffprobe left it out.</summary>
    public static string Field(JsonElement element, string name) =>
        element.TryGetProperty(name, out var value) ? value.ValueKind == JsonValueKind.String ? value.GetString()! : value.GetRawText() : "N/A";

    /// <summary>A rate such as <c>25/1</c> as a number; NaN for <c>0/0</c> or N/A.</summary>
    public static double Rate(string text)
    {
        string[] parts = text.Split('/');
        if (parts.Length != 2
            || !double.TryParse(parts[0], NumberStyles.Float, CultureInfo.InvariantCulture, out double num)
            || !double.TryParse(parts[1], NumberStyles.Float, CultureInfo.InvariantCulture, out double den)
            || den == 0)
        {
            return double.NaN;
        }

        return num / den;
    }

    /// <summary>A decimal such as <c>0.040000</c>; NaN for N/A.</summary>
    public static double Number(string text) =>
        double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double value) ? value : double.NaN;

    private static (byte[] Stdout, string Stderr) Run(string tool, IEnumerable<string> arguments)
    {
        string[] list = arguments.ToArray();
        var (exitCode, stdout, stderr) = TryRun(tool, list);
        if (exitCode != 0)
        {
            throw new InvalidOperationException($"{tool} {string.Join(' ', list)} failed ({exitCode}): {stderr}");
        }

        return (stdout, stderr);
    }
}
