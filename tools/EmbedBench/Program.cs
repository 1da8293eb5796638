// Video embedding throughput (videos/s) through Core.Inference: probe, decode the manifest's views,
// micro-batched inference, at concurrency 1, 4 and 16 with batching off (max batch 1) and on (max
// batch 8, 10 ms wait). The model is exported by a child process so this one never loads libtorch.
// Also prints where the time goes (decode vs queue vs inference, summed over videos).
//
// Each configuration runs with every decode path of --decode-paths (default: the ffmpeg command line, then
// the decode worker), side by side.
//
//   dotnet run -c Release --project tools/EmbedBench [-- --arch r3d18 --width 1 --videos 16 --threads 1 --decode-paths Cli,Worker]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;

var options = new Dictionary<string, string> { ["--arch"] = "r3d18", ["--width"] = "1", ["--videos"] = "16", ["--threads"] = $"{new EncoderSessionOptions().IntraOpThreads}" };
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

string work = Path.Combine(Path.GetTempPath(), "cvrl-embed-bench");
string models = Path.Combine(work, "models");
if (options.TryGetValue("--mode", out string? mode) && mode == "export")
{
    TorchSharp.torch.manual_seed(0);
    using var encoder = new R3dEncoder(R3dArchitecture.Parse(options["--arch"]), double.Parse(options["--width"], CultureInfo.InvariantCulture));
    EncoderExport.Write(Path.Combine(models, "bench"), encoder, EncoderExport.DefaultView, EncoderExport.CvrlValues, new Provenance("random-init"), null);
    return 0;
}

int count = int.Parse(options["--videos"], CultureInfo.InvariantCulture);
Directory.CreateDirectory(Path.Combine(work, "videos"));
var videos = Enumerable.Range(0, count).Select(i => Path.Combine(work, "videos", $"v{i}.mp4")).ToArray();
for (int i = 0; i < count; i++)
{
    if (!File.Exists(videos[i]))
    {
        Run("ffmpeg", $"-nostdin -v error -y -f lavfi -i testsrc2=s=320x240:r=25 -t {6 + i % 5} -vf hue=h={i * 20} -c:v libx264 -preset veryfast -g 50 -pix_fmt yuv420p \"{videos[i]}\"");
    }
}

Run(Environment.ProcessPath!, $"--mode export --arch {options["--arch"]} --width {options["--width"]}");
Console.WriteLine($"{count} videos (320x240, 6-10 s, h264); model {options["--arch"]} x{options["--width"]}; views: {EncoderExport.DefaultView.Clips} clips x {EncoderExport.DefaultView.Frames} frames at {EncoderExport.DefaultView.CropSize}^2; {Environment.ProcessorCount} cores, {options["--threads"]} ONNX Runtime thread(s)");
var paths = options.GetValueOrDefault("--decode-paths", "Cli,Worker").Split(',').Select(p => Enum.Parse<DecodePath>(p, ignoreCase: true)).ToArray();
Console.WriteLine($"{"concurrency",11} {"batching",9} {"decode",7} {"videos/s",9} {"largest batch",14} {"decode s",9} {"queue s",8} {"infer s",8}");
var results = new Dictionary<(int, bool, DecodePath), double>();
foreach (int concurrency in new[] { 1, 4, 16 })
{
    foreach (var (batching, path) in paths.Select(p => (false, p)).Concat(paths.Select(p => (true, p))))
    {
        var sessionOptions = new EncoderSessionOptions { Provider = ProviderPreference.Cpu, IntraOpThreads = int.Parse(options["--threads"], CultureInfo.InvariantCulture), MaxBatchSize = batching ? 8 : 1, MaxBatchWait = TimeSpan.FromMilliseconds(batching ? 10 : 0), QueueCapacity = 4096, InferenceTimeout = Timeout.InfiniteTimeSpan };
        await using var registry = new ModelRegistry(models, sessionOptions);
        await registry.StartAsync();
        using var lease = registry.Acquire("bench");
        using var reader = new VideoReader(new VideoReaderOptions { DecodePath = path });
        var embedder = new VideoEmbedder(reader);
        await embedder.EmbedAsync(lease.Model, videos[0]); // warm the probe path and caches alike for every configuration
        using var slots = new SemaphoreSlim(concurrency);
        var clock = Stopwatch.StartNew();
        var timings = await Task.WhenAll(videos.Select(async v =>
        {
            await slots.WaitAsync();
            try
            {
                return (await embedder.EmbedAsync(lease.Model, v)).Timings;
            }
            finally
            {
                slots.Release();
            }
        }));
        double rate = count / clock.Elapsed.TotalSeconds;
        results[(concurrency, batching, path)] = rate;
        Console.WriteLine($"{concurrency,11} {(batching ? "on" : "off"),9} {path,7} {rate,9:F2} {lease.Model.Batcher.Statistics.LargestBatch,14} {timings.Sum(t => t.Decode.TotalSeconds),9:F1} {timings.Sum(t => t.Queue.TotalSeconds),8:F1} {timings.Sum(t => t.Inference.TotalSeconds),8:F1}");
    }
}

Console.WriteLine();
foreach (var path in paths)
{
    foreach (int concurrency in new[] { 1, 4, 16 })
    {
        Console.WriteLine($"{path}, concurrency {concurrency,2}: batching on / off = {results[(concurrency, true, path)] / results[(concurrency, false, path)]:F2}x videos/s; vs concurrency 1 (off) = {results[(concurrency, true, path)] / results[(1, false, path)]:F2}x");
    }
}

if (paths.Length == 2)
{
    foreach (int concurrency in new[] { 1, 4, 16 })
    {
        Console.WriteLine($"concurrency {concurrency,2}, batching on: {paths[1]} / {paths[0]} = {results[(concurrency, true, paths[1])] / results[(concurrency, true, paths[0])]:F2}x videos/s");
    }
}

return 0;

static void Run(string file, string arguments)
{
    using var process = Process.Start(new ProcessStartInfo(file, arguments) { RedirectStandardError = true, UseShellExecute = false })!;
    string stderr = process.StandardError.ReadToEnd();
    process.WaitForExit();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} {arguments} failed: {stderr}");
    }
}
