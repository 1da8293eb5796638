using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// Real sample videos from Debian packages (opencv-doc, python3-imageio, the mimetype Go library's
/// testdata), fetched by tools/fetch-footage.sh into a cache outside the repository. Each either embeds
/// or is refused with a typed error that says why; a file in an accepted container whose codec ffmpeg
/// decodes, within the default limits, must embed.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class RealFootageTests(ITestOutputHelper output)
{
    /// <summary>The file extensions of the videos the real-footage and parity tests read.</summary>
    internal static readonly string[] Extensions =
        ["mp4", "avi", "mkv", "webm", "mov", "ogv", "ogg", "flv", "3gp", "asf", "wmv", "mpg", "mpeg", "ts", "m4v", "gif", "rmvb", "rm"];

    /// <summary>CVRL_FOOTAGE, else the script's default cache folder.</summary>
    public static string Folder =>
        Environment.GetEnvironmentVariable("CVRL_FOOTAGE") is { Length: > 0 } folder
            ? folder
            : Path.Combine(
                Environment.GetEnvironmentVariable("XDG_CACHE_HOME") is { Length: > 0 } cache
                    ? cache
                    : Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"),
                "cvrl", "footage");

    [Fact]
    public async Task EveryRealVideo_EmbedsOrIsRefusedWithATypedReason()
    {
        Assert.True(Directory.Exists(Folder),
            $"No real footage at '{Folder}'. Run tools/fetch-footage.sh (or set CVRL_FOOTAGE to a folder it filled) before the tests.");
        string[] files = Directory.EnumerateFiles(Folder, "*", SearchOption.AllDirectories)
            .Where(f => Extensions.Contains(Path.GetExtension(f).TrimStart('.').ToLowerInvariant()))
            .Order(StringComparer.Ordinal)
            .ToArray();
        Assert.True(files.Length > 0, $"'{Folder}' holds no video files. Run tools/fetch-footage.sh again.");

        var defaults = new VideoLimits();
        using var reader = new VideoReader();
        await using var encoder = await TinyEncoder.LoadAsync();
        var failures = new List<string>();
        var total = Stopwatch.StartNew();
        foreach (string file in files)
        {
            var truth = Truth(file, defaults);
            var clock = Stopwatch.StartNew();
            string outcome;
            string? failure = null;
            try
            {
                var embedding = await encoder.EmbedAsync(reader, file);
                string? problem = TinyEncoder.Problem(embedding);
                outcome = problem is null ? "embedded" : $"embedded, but {problem}";
                failure = problem;
            }
            catch (CvrlException e)
            {
                outcome = $"{e.Kind} ({e.GetType().Name}): {e.Message}";
                if (truth.MustEmbed)
                {
                    failure = $"refused although its container is accepted, ffmpeg decodes it and it is within the limits: {outcome}";
                }
                else if (e.Kind is not (ErrorKind.UnsupportedMedia or ErrorKind.LimitExceeded))
                {
                    failure = $"refused with {e.Kind}; expected UnsupportedMedia (or LimitExceeded where a limit is exceeded)";
                }
            }
#pragma warning disable CA1031 // Any other exception is the bug this test reports, with the file.
            catch (Exception e)
#pragma warning restore CA1031
            {
                outcome = $"UNTYPED {e.GetType().FullName}: {e.Message}";
                failure = "threw an exception that is not a CvrlException";
            }

            string name = Path.GetRelativePath(Folder, file);
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"{name} [{truth}] {clock.ElapsedMilliseconds} ms: {outcome}"));
            if (failure is not null)
            {
                failures.Add($"{name} [{truth}]: {failure}");
            }
        }

        output.WriteLine($"{files.Length} files in {total.Elapsed.TotalSeconds:F1} s");
        Assert.True(failures.Count == 0, $"{failures.Count} of {files.Length} real videos:\n{string.Join('\n', failures)}");
    }

    /// <summary>What ffprobe and ffmpeg themselves say about a file, apart from the code under test.</summary>
    private static FootageTruth Truth(string file, VideoLimits limits)
    {
        var (probeExit, probeOut, _) = FfTools.TryRun("ffprobe",
            ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=codec_name,width,height:format=format_name,duration", "-of", "json", "--", file],
            TimeSpan.FromSeconds(30));
        string format = "?", codec = "none";
        long pixels = 0;
        double duration = 0;
        if (probeExit == 0)
        {
            using var json = System.Text.Json.JsonDocument.Parse(probeOut);
            format = FfTools.Field(json.RootElement.GetProperty("format"), "format_name");
            duration = FfTools.Number(FfTools.Field(json.RootElement.GetProperty("format"), "duration"));
            if (json.RootElement.TryGetProperty("streams", out var streams) && streams.GetArrayLength() > 0)
            {
                codec = FfTools.Field(streams[0], "codec_name");
                pixels = (long)FfTools.Number(FfTools.Field(streams[0], "width")) * (long)FfTools.Number(FfTools.Field(streams[0], "height"));
            }
        }

        bool accepted = format.Split(',').Any(VideoReaderOptions.DefaultAllowedFormats.Contains);
        bool decodes = codec != "none" && FfTools.TryRun("ffmpeg",
            ["-nostdin", "-v", "error", "-i", file, "-map", "0:v:0", "-frames:v", "2", "-f", "null", "-"], TimeSpan.FromSeconds(60)).ExitCode == 0;
        bool withinLimits = pixels <= limits.MaxPixelsPerFrame
            && new FileInfo(file).Length <= limits.MaxFileBytes
            && !(duration > limits.MaxDuration.TotalSeconds);
        return new FootageTruth(format, codec, pixels, accepted, decodes, withinLimits);
    }

    private sealed record FootageTruth(string Format, string Codec, long Pixels, bool Accepted, bool Decodes, bool WithinLimits)
    {
        public bool MustEmbed => Accepted && Decodes && WithinLimits;

        public override string ToString() =>
            $"{Format}/{Codec}, {(Accepted ? "accepted container" : "container not accepted")}, " +
            $"{(Decodes ? "ffmpeg decodes it" : "ffmpeg cannot decode it")}{(WithinLimits ? "" : $", over a default limit ({Pixels} pixels)")}";
    }
}
