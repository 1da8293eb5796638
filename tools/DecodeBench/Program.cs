// Decoding benchmark (issue 13): the persistent decode worker against the ffmpeg command line it
// replaces and against PyAV, side by side in one run, rounds interleaved so machine noise hits all alike.
//   plan      K = 10 clips × 16 frames (stride 2) from a 60 s 720p h264 video (keyframe every 2 s),
//             scaled to short side 128 (228×128): worker, cli (one ffmpeg process, a seeking input per
//             clip), and pyav (tools/peers/pyav_decode.py: a seek per clip, decode forward, swscale
//             bilinear; timed inside its own long-lived process, as the worker is).
//   overhead  one request for one frame of a small file (64×48, 1 s), media information included (no
//             cache): what a request costs before any real decoding, worker vs cli.
// The worker's and the command line's frames are compared byte for byte first.
//
//   dotnet run -c Release --project tools/DecodeBench [-- --rounds 7] [--out docs/results/decode-bench.json]
using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using CvrlServe.Core.Video;

var options = new Dictionary<string, string> { ["--rounds"] = "7", ["--out"] = "" };
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

int rounds = int.Parse(options["--rounds"], CultureInfo.InvariantCulture);
string folder = Path.Combine(AppContext.BaseDirectory, "bench-data");
Directory.CreateDirectory(folder);
string video = Path.Combine(folder, "720p-60s-gop2s.mp4");
string small = Path.Combine(folder, "64x48-1s.mp4");
Encode(video, "-f lavfi -i testsrc2=s=1280x720:r=30 -t 60 -c:v libx264 -preset veryfast -g 60 -keyint_min 60 -pix_fmt yuv420p");
Encode(small, "-f lavfi -i testsrc2=s=64x48:r=25 -t 1 -c:v libx264 -pix_fmt yuv420p");

using var worker = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker });
using var cli = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Cli });
using var workerUncached = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Worker, MediaInfoCacheCapacity = 0 });
using var cliUncached = new VideoReader(new VideoReaderOptions { DecodePath = DecodePath.Cli, MediaInfoCacheCapacity = 0 });
string backend = await worker.CheckDecoderAsync();
await workerUncached.CheckDecoderAsync();
if (!worker.UsesWorker)
{
    Console.Error.WriteLine($"The decode worker is not in use: {backend}");
    return 2;
}

var media = await worker.GetMediaInfoAsync(video);
var geometry = new FrameGeometry(128);
var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(16, 2), 10);
var (width, height) = geometry.ResizedSize(media.Width, media.Height);
Console.WriteLine($"Video: {media.Width}x{media.Height}, {media.FrameRate} fps, {media.FrameCount} frames; plan: 10 clips x 16 frames, stride 2 -> {width}x{height}");
Console.WriteLine($"Worker: {backend}; {Environment.ProcessorCount} cores");

var ours = await worker.DecodeAsync(media, plan, geometry);
var reference = await cli.DecodeAsync(media, plan, geometry);
bool identical = ours.Views.Zip(reference.Views).All(p => p.First.Rgb.AsSpan().SequenceEqual(p.Second.Rgb));
Console.WriteLine($"Frames identical between worker and command line: {identical}");

using var pyav = PyAv.Start();
string request = JsonSerializer.Serialize(new
{
    path = video,
    rate = media.Grid().Rate,
    start = 0.0,
    clips = plan.Clips.Select(c => c.Frames),
    width,
    height,
});
var first = await pyav.DecodeAsync(request);
int planned = plan.Clips.Sum(c => c.Frames.Distinct().Count());
Console.WriteLine($"PyAV peer: {first.Frames} frames of {planned} planned, {first.Bytes} bytes (ours: {ours.Views.Sum(v => v.Rgb.Length)})");

var times = new Dictionary<string, List<double>> { ["worker"] = [], ["cli"] = [], ["pyav"] = [], ["overhead worker"] = [], ["overhead cli"] = [] };
var one = new Func<VideoReader, Task>(async reader =>
{
    var m = await reader.GetMediaInfoAsync(small);
    await reader.DecodeAsync(m, new SamplingPlan(m.Grid(), [new ClipPlan([0])]), FrameGeometry.FullFrame);
});
await one(workerUncached);
await one(cliUncached);
for (int r = 0; r < rounds; r++)
{
    times["worker"].Add(await Time(() => worker.DecodeAsync(media, plan, geometry)));
    times["cli"].Add(await Time(() => cli.DecodeAsync(media, plan, geometry)));
    times["pyav"].Add((await pyav.DecodeAsync(request)).Seconds);
    for (int k = 0; k < 5; k++)
    {
        times["overhead worker"].Add(await Time(() => one(workerUncached)));
        times["overhead cli"].Add(await Time(() => one(cliUncached)));
    }
}

static double Median(List<double> xs) => xs.Order().ElementAt(xs.Count / 2);
Console.WriteLine();
Console.WriteLine($"{"way",-16} {"median s",10} {"min s",8} {"max s",8}   ({rounds} interleaved rounds; overhead: 5 per round)");
foreach (var (name, xs) in times)
{
    Console.WriteLine($"{name,-16} {Median(xs),10:F4} {xs.Min(),8:F4} {xs.Max(),8:F4}");
}

var ratios = new Dictionary<string, double>
{
    ["worker / pyav"] = Median(times["worker"]) / Median(times["pyav"]),
    ["worker / cli"] = Median(times["worker"]) / Median(times["cli"]),
    ["overhead worker ms"] = Median(times["overhead worker"]) * 1000,
    ["overhead cli ms"] = Median(times["overhead cli"]) * 1000,
};
Console.WriteLine();
Console.WriteLine($"worker / pyav (same plan)        = {ratios["worker / pyav"]:F3}  (target <= 1.0)");
Console.WriteLine($"worker / cli (same frames)       = {ratios["worker / cli"]:F3}");
Console.WriteLine($"one-frame request, media info included: worker {ratios["overhead worker ms"]:F1} ms, cli {ratios["overhead cli ms"]:F1} ms  (target <= 10 ms)");
if (options["--out"] is { Length: > 0 } output)
{
    await File.WriteAllTextAsync(output, JsonSerializer.Serialize(new
    {
        machine = $"{Environment.ProcessorCount} cores",
        worker = backend,
        rounds,
        identical,
        medians = times.ToDictionary(t => t.Key, t => Median(t.Value)),
        ratios,
    }, new JsonSerializerOptions { WriteIndented = true }));
}

return identical ? 0 : 1;

static async Task<double> Time(Func<Task> action)
{
    var clock = Stopwatch.StartNew();
    await action();
    return clock.Elapsed.TotalSeconds;
}

static void Encode(string path, string arguments)
{
    if (File.Exists(path))
    {
        return;
    }

    Console.WriteLine($"Encoding {Path.GetFileName(path)} (once)...");
    using var process = Process.Start(new ProcessStartInfo("ffmpeg", $"-nostdin -v error -y {arguments} \"{path}.tmp.mp4\"") { RedirectStandardError = true, UseShellExecute = false })!;
    string stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"ffmpeg failed ({process.ExitCode}): {stderr}");
    }

    File.Move(path + ".tmp.mp4", path);
}

/// <summary>The PyAV peer process (tools/peers/pyav_decode.py), one JSON line per request.</summary>
internal sealed class PyAv : IDisposable
{
    private readonly Process _process;

    private PyAv(Process process) => _process = process;

    public static PyAv Start()
    {
        string script = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "../../../../peers/pyav_decode.py"));
        var start = new ProcessStartInfo("/usr/bin/python3") { RedirectStandardInput = true, RedirectStandardOutput = true, UseShellExecute = false };
        start.ArgumentList.Add(script);
        return new PyAv(Process.Start(start)!);
    }

    public async Task<(double Seconds, int Frames, long Bytes)> DecodeAsync(string request)
    {
        await _process.StandardInput.WriteLineAsync(request);
        await _process.StandardInput.FlushAsync();
        string line = await _process.StandardOutput.ReadLineAsync() ?? throw new InvalidOperationException("The PyAV peer ended (is python3-av installed?)");
        using var answer = JsonDocument.Parse(line);
        var root = answer.RootElement;
        return (root.GetProperty("seconds").GetDouble(), root.GetProperty("frames").GetInt32(), root.GetProperty("bytes").GetInt64());
    }

    public void Dispose()
    {
        _process.StandardInput.Close();
        _process.WaitForExit(5000);
        _process.Dispose();
    }
}
