// Peak memory of N concurrent embeddings of a hostile upload: a 4096×16 h264 video (10 s, 25 fps, a few
// KB) that the serving view resizes to 32768×128 before its 112² centre crop. Prints the peak managed heap
// (sampled every 5 ms), the process's peak resident set (VmHWM: managed + native: ONNX Runtime, buffers)
// above what it held before the requests, the decoded-memory budget's peak, and how each request ended.
// Server GC, as ASP.NET Core runs. Run it in a process of its own (VmHWM is process-wide).
//
//   cvrl init --arch r3d18 --width 0.25 --out /tmp/membench-model       # 16×112² views, 4 clips
//   dotnet run -c Release --project tools/MemoryBench -- --model /tmp/membench-model [--requests 16] [--max-aspect 256]
using System.Diagnostics;
using System.Globalization;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

var options = new Dictionary<string, string> { ["--requests"] = "16", ["--width"] = "4096", ["--height"] = "16" };
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

if (!options.TryGetValue("--model", out string? model))
{
    Console.Error.WriteLine("usage: MemoryBench --model MODEL_FOLDER [--requests 16] [--width 4096 --height 16] [--max-aspect R]");
    return 2;
}

int requests = int.Parse(options["--requests"], CultureInfo.InvariantCulture);
string work = Directory.CreateTempSubdirectory("cvrl-membench-").FullName;
string source = Path.Combine(work, "wide.mp4");
var encode = await ToolProcess.RunAsync("ffmpeg",
    ["-nostdin", "-v", "error", "-y", "-f", "lavfi", "-i", $"testsrc2=s={options["--width"]}x{options["--height"]}:r=25", "-t", "10",
     "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", source], null, TimeSpan.FromMinutes(2), "encoding");
if (encode.ExitCode != 0)
{
    throw new InvalidOperationException(string.Join('\n', encode.StderrTail));
}

// One copy per request, as uploads would be (the media-information cache is per file).
var uploads = Enumerable.Range(0, requests).Select(i => Path.Combine(work, $"upload-{i}.mp4")).ToArray();
foreach (string upload in uploads)
{
    File.Copy(source, upload);
}

var limits = new VideoLimits();
if (options.TryGetValue("--max-aspect", out string? aspect))
{
    limits = limits with { MaxAspectRatio = double.Parse(aspect, CultureInfo.InvariantCulture) };
}

using var reader = new VideoReader(new VideoReaderOptions { Limits = limits });
await using var encoder = await EncoderModel.LoadAsync(model, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, InferenceTimeout = Timeout.InfiniteTimeSpan });
var embedder = new VideoEmbedder(reader);

GC.Collect();
GC.WaitForPendingFinalizers();
GC.Collect();
long baselineRss = Status("VmRSS");
long baselineHeap = GC.GetTotalMemory(false);
long peakHeap = baselineHeap;
using var stop = new CancellationTokenSource();
var sampler = Task.Run(async () =>
{
    while (!stop.IsCancellationRequested)
    {
        peakHeap = Math.Max(peakHeap, GC.GetTotalMemory(false));
        await Task.Delay(5);
    }
});

var clock = Stopwatch.StartNew();
var outcomes = await Task.WhenAll(uploads.Select(async upload =>
{
    try
    {
        await embedder.EmbedAsync(encoder, upload);
        return "embedded";
    }
    catch (CvrlException e)
    {
        return $"{e.Kind}: {e.Message}";
    }
}));
var elapsed = clock.Elapsed;
await stop.CancelAsync();
await sampler;

const double MiB = 1024 * 1024;
Console.WriteLine($"{requests} concurrent embeddings of a {options["--width"]}x{options["--height"]} video ({new FileInfo(source).Length} bytes), model {Path.GetFileName(Path.GetFullPath(model))}, aspect limit {limits.MaxAspectRatio}, {Environment.ProcessorCount} cores, {elapsed.TotalSeconds:F1} s");
foreach (var group in outcomes.GroupBy(o => o))
{
    Console.WriteLine($"  {group.Count(),3} x {group.Key}");
}

Console.WriteLine($"peak managed heap above baseline: {(peakHeap - baselineHeap) / MiB,8:F1} MiB (sampled every 5 ms)");
Console.WriteLine($"peak RSS above baseline (VmHWM - VmRSS before): {(Status("VmHWM") - baselineRss) / MiB,8:F1} MiB");
Console.WriteLine($"decoded-memory budget: peak {reader.MemoryBudget.PeakBytes / MiB:F1} MiB of {reader.MemoryBudget.CapacityBytes / MiB:F0} MiB");
Directory.Delete(work, recursive: true);
return 0;

static long Status(string field)
{
    string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith(field + ":", StringComparison.Ordinal));
    return long.Parse(line.Split([' ', '\t'], StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
}
