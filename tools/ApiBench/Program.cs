// What serving costs: POST /v1/embeddings on the real server against Core's pipeline in this process, on the
// same videos, at the same concurrencies, with the same settings.
//
// The server is a child process: `dotnet src/CvrlServe.Api/bin/Release/net10.0/CvrlServe.Api.dll` (built
// with `dotnet build src/CvrlServe.Api -c Release` first when missing), run from its output folder so it
// reads its own appsettings.json, with ASPNETCORE_URLS=http://127.0.0.1:0 (Kestrel picks a free port; the
// address is parsed from its "Now listening on:" line), the models folder, a temporary data folder,
// Cvrl__Provider=Cpu and rate limiting off. It is driven with HttpClient only (multipart uploads of the
// files' bytes, held in memory). This process runs the in-process pipeline: VideoReader + EncoderModel.LoadAsync
// + VideoEmbedder.EmbedAsync on the CPU, with the server's batching settings read from that same
// appsettings.json, each request on a fresh copy of its video (the server probes every upload, and the
// media-information cache is per file). Both are warmed first; then, per concurrency, the two alternate
// (server, in-process, server, in-process: --rounds pairs) so a noisy machine's drift hits both. A 503 (or
// an OverloadedException in-process) is retried after its Retry-After and counted; the latency includes it.
//
//   dotnet run -c Release --project tools/ApiBench -- [--out docs/results/api-bench.json] [--requests 64]
//     [--concurrency 1,16] [--rounds 2] [--videos samples/synthmotion] [--models models] [--model synthmotion-cvrl]
//     [--server PATH/CvrlServe.Api.dll] [--decode-path Auto|Worker|Cli]   (both sides decode the same way)
//
// Prints, per concurrency and side: p50 and p95 latency, throughput (videos/s), retries; and the ratio
// server / in-process throughput per concurrency. Writes the same as JSON to --out.
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Tools;

var options = new Dictionary<string, string>
{
    ["--requests"] = "64",
    ["--concurrency"] = "1,16",
    ["--rounds"] = "2",
    ["--videos"] = "samples/synthmotion",
    ["--models"] = "models",
    ["--model"] = "synthmotion-cvrl",
    ["--decode-path"] = "Auto",
};
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

string root = ChildServer.RepositoryRoot();
int requests = int.Parse(options["--requests"], CultureInfo.InvariantCulture);
int rounds = int.Parse(options["--rounds"], CultureInfo.InvariantCulture);
int[] concurrencies = options["--concurrency"].Split(',').Select(c => int.Parse(c, CultureInfo.InvariantCulture)).ToArray();
string modelsFolder = Path.GetFullPath(options["--models"], root);
string model = options["--model"];
string serverDll = options.TryGetValue("--server", out string? given) ? Path.GetFullPath(given) : Path.Combine(root, "src/CvrlServe.Api/bin/Release/net10.0/CvrlServe.Api.dll");
if (!File.Exists(serverDll))
{
    Console.WriteLine($"building the server ({serverDll} is missing)...");
    await RunAsync("dotnet", ["build", Path.Combine(root, "src/CvrlServe.Api"), "-c", "Release", "-v", "quiet"], root);
}

var sources = Directory.EnumerateFiles(Path.GetFullPath(options["--videos"], root), "*", SearchOption.AllDirectories)
    .Where(f => f.EndsWith(".mp4", StringComparison.OrdinalIgnoreCase) || f.EndsWith(".webm", StringComparison.OrdinalIgnoreCase))
    .Order(StringComparer.Ordinal).ToArray();
var plan = Enumerable.Range(0, requests).Select(i => sources[i % sources.Length]).ToArray();
var bytes = sources.ToDictionary(s => s, File.ReadAllBytes);

// The server's own defaults, so both sides batch alike.
var cvrl = JsonNode.Parse(File.ReadAllText(Path.Combine(Path.GetDirectoryName(serverDll)!, "appsettings.json")))!["Cvrl"]!;
var batching = cvrl["Batching"]!;
var defaults = new EncoderSessionOptions();
var sessionOptions = new EncoderSessionOptions
{
    Provider = ProviderPreference.Cpu,
    MaxBatchSize = (int?)batching["MaxBatchSize"] ?? defaults.MaxBatchSize,
    MaxBatchWait = TimeSpan.FromMilliseconds((double?)batching["MaxBatchWaitMilliseconds"] ?? defaults.MaxBatchWait.TotalMilliseconds),
    QueueCapacity = (int?)batching["QueueCapacity"] ?? defaults.QueueCapacity,
    IntraOpThreads = (int?)batching["IntraOpThreads"] is int threads and > 0 ? threads : defaults.IntraOpThreads,
    InferenceTimeout = TimeSpan.FromSeconds((double?)cvrl["RequestTimeoutSeconds"] ?? 120),
};
var decodePath = Enum.Parse<DecodePath>(options["--decode-path"], ignoreCase: true);
var readerOptions = new VideoReaderOptions
{
    DecodePath = decodePath,
    DecodedMemoryBudgetBytes = (long?)cvrl["DecodedMemoryBudgetBytes"] ?? 1L << 30,
    MaxWaitingDecodes = (int?)cvrl["MaxWaitingDecodes"] ?? 32,
};

string work = Directory.CreateTempSubdirectory("cvrl-api-bench-").FullName;
using var server = ChildServer.Start(serverDll, new Dictionary<string, string>
{
    ["Cvrl__ModelsFolder"] = modelsFolder,
    ["Cvrl__DataFolder"] = Path.Combine(work, "data"),
    ["Cvrl__Provider"] = "Cpu",
    ["Cvrl__DecodePath"] = decodePath.ToString(),
    ["Cvrl__RateLimit__PermitsPerWindow"] = "0",
});
try
{
    using var http = await server.ReadyClientAsync();
    var address = http.BaseAddress!;

    using var reader = new VideoReader(readerOptions);
    await using var encoder = await EncoderModel.LoadAsync(Path.Combine(modelsFolder, model), sessionOptions);
    var embedder = new VideoEmbedder(reader);

    Console.WriteLine($"{requests} requests over {sources.Length} videos in {options["--videos"]}; model {model}; CPU; batching {sessionOptions.MaxBatchSize} clips / {sessionOptions.MaxBatchWait.TotalMilliseconds} ms, "
        + $"{sessionOptions.IntraOpThreads} ONNX Runtime thread(s); {Environment.ProcessorCount} cores; server at {address}; load average {ChildServer.LoadAverage()}");

    // Server side: one multipart upload per request.
    async Task<Sample> ServerAsync(string video)
    {
        var clock = Stopwatch.StartNew();
        int retries = 0;
        while (true)
        {
            using var form = new MultipartFormDataContent();
            var file = new ByteArrayContent(bytes[video]);
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "file", Path.GetFileName(video));
            form.Add(new StringContent(model), "model");
            HttpResponseMessage response;
            try
            {
                response = await http.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), form);
            }
            catch (HttpRequestException) when (server.HasExited)
            {
                throw new InvalidOperationException("the server exited:\n" + server.Tail());
            }

            using var _ = response;
            string body = await response.Content.ReadAsStringAsync();
            if (response.StatusCode == HttpStatusCode.ServiceUnavailable)
            {
                retries++;
                await Task.Delay(response.Headers.RetryAfter?.Delta ?? TimeSpan.FromSeconds(1));
                continue;
            }

            if (response.StatusCode != HttpStatusCode.OK)
            {
                throw new InvalidOperationException($"{video}: {(int)response.StatusCode} {body}");
            }

            return new Sample(clock.Elapsed.TotalSeconds, retries);
        }
    }

    // In-process: the same pipeline on a fresh copy of the video (made before the clock starts).
    async Task<Sample> InProcessAsync(string copy)
    {
        var clock = Stopwatch.StartNew();
        int retries = 0;
        while (true)
        {
            try
            {
                await embedder.EmbedAsync(encoder, copy);
                return new Sample(clock.Elapsed.TotalSeconds, retries);
            }
            catch (OverloadedException e)
            {
                retries++;
                await Task.Delay(e.RetryAfter);
            }
        }
    }

    var copies = 0;
    string[] Copies()
    {
        string folder = Path.Combine(work, $"copies-{copies++}");
        Directory.CreateDirectory(folder);
        return plan.Select((v, i) =>
        {
            string copy = Path.Combine(folder, $"{i}{Path.GetExtension(v)}");
            File.Copy(v, copy);
            return copy;
        }).ToArray();
    }

    // Warm both: model sessions, thread pools, connections, ffmpeg's page cache, at the highest concurrency.
    var warm = plan.Take(Math.Min(plan.Length, concurrencies.Max())).ToArray();
    await MeasureAsync(warm, concurrencies.Max(), ServerAsync);
    await MeasureAsync(Copies().Take(warm.Length).ToArray(), concurrencies.Max(), InProcessAsync);

    var results = new List<Result>();
    foreach (int concurrency in concurrencies)
    {
        var server1 = new List<Run>();
        var local = new List<Run>();
        for (int round = 0; round < rounds; round++)
        {
            server1.Add(await MeasureAsync(plan, concurrency, ServerAsync));
            Console.WriteLine($"  c={concurrency} round {round + 1}: server {server1[^1].VideosPerSecond:F2} videos/s");
            local.Add(await MeasureAsync(Copies(), concurrency, InProcessAsync));
            Console.WriteLine($"  c={concurrency} round {round + 1}: in-process {local[^1].VideosPerSecond:F2} videos/s");
        }

        results.Add(Result.Of("server", concurrency, server1));
        results.Add(Result.Of("in-process", concurrency, local));
    }

    Console.WriteLine();
    Console.WriteLine($"{"side",-11} {"concurrency",11} {"p50 s",7} {"p95 s",7} {"videos/s",9} {"retries",8} {"ratio",6}");
    foreach (var r in results)
    {
        double ratio = r.VideosPerSecond / results.Single(o => o.Side == "in-process" && o.Concurrency == r.Concurrency).VideosPerSecond;
        Console.WriteLine($"{r.Side,-11} {r.Concurrency,11} {r.P50,7:F3} {r.P95,7:F3} {r.VideosPerSecond,9:F2} {r.Retries,8} {(r.Side == "server" ? ratio.ToString("F2", CultureInfo.InvariantCulture) : ""),6}");
    }

    Console.WriteLine($"ratio = server videos/s ÷ in-process videos/s at the same concurrency; load average now {ChildServer.LoadAverage()}");
    if (options.TryGetValue("--out", out string? outPath))
    {
        var report = new
        {
            command = "dotnet run -c Release --project tools/ApiBench -- " + string.Join(' ', args),
            date = DateTimeOffset.UtcNow,
            machine = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, loadAverageAtEnd = ChildServer.LoadAverage() },
            settings = new
            {
                model,
                provider = "Cpu",
                requests,
                videos = sources.Select(s => Path.GetRelativePath(root, s)).ToArray(),
                rounds,
                order = "per concurrency: server, in-process, alternating, rounds pairs",
                batching = new { sessionOptions.MaxBatchSize, maxBatchWaitMilliseconds = sessionOptions.MaxBatchWait.TotalMilliseconds, sessionOptions.QueueCapacity, sessionOptions.IntraOpThreads },
                server = "dotnet CvrlServe.Api.dll, ASPNETCORE_URLS=http://127.0.0.1:0 (port from 'Now listening on:'), Cvrl__Provider=Cpu, Cvrl__RateLimit__PermitsPerWindow=0",
            },
            results,
            ratios = concurrencies.ToDictionary(c => c.ToString(CultureInfo.InvariantCulture),
                c => Math.Round(results.Single(r => r.Side == "server" && r.Concurrency == c).VideosPerSecond / results.Single(r => r.Side == "in-process" && r.Concurrency == c).VideosPerSecond, 3)),
        };
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
        await File.WriteAllTextAsync(outPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }) + "\n");
        Console.WriteLine($"wrote {outPath}");
    }

    return 0;
}
finally
{
    server.Dispose();
    Directory.Delete(work, recursive: true);
}

static async Task<Run> MeasureAsync(string[] videos, int concurrency, Func<string, Task<Sample>> one)
{
    var samples = new Sample[videos.Length];
    var clock = Stopwatch.StartNew();
    await Parallel.ForEachAsync(Enumerable.Range(0, videos.Length), new ParallelOptions { MaxDegreeOfParallelism = concurrency },
        async (i, _) => samples[i] = await one(videos[i]));
    return new Run(clock.Elapsed.TotalSeconds, videos.Length / clock.Elapsed.TotalSeconds, samples);
}

static async Task RunAsync(string file, string[] arguments, string folder)
{
    var start = new ProcessStartInfo(file) { WorkingDirectory = folder, UseShellExecute = false };
    foreach (string argument in arguments)
    {
        start.ArgumentList.Add(argument);
    }

    using var process = Process.Start(start)!;
    await process.WaitForExitAsync();
    if (process.ExitCode != 0)
    {
        throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} failed ({process.ExitCode})");
    }
}

/// <summary>One request: client-side seconds (retries included) and how many 503s it met.</summary>
internal sealed record Sample(double Seconds, int Retries);

/// <summary>One pass over the plan at one concurrency.</summary>
internal sealed record Run(double Seconds, double VideosPerSecond, Sample[] Samples);

/// <summary>One side at one concurrency over every round: latency percentiles over all requests, throughput over all time.</summary>
internal sealed record Result(string Side, int Concurrency, double P50, double P95, double VideosPerSecond, int Retries, double[] RoundVideosPerSecond)
{
    public static Result Of(string side, int concurrency, IReadOnlyList<Run> runs)
    {
        var latencies = runs.SelectMany(r => r.Samples.Select(s => s.Seconds)).Order().ToArray();
        double Percentile(double p) => latencies[Math.Clamp((int)Math.Ceiling(p * latencies.Length) - 1, 0, latencies.Length - 1)];
        return new Result(side, concurrency, Math.Round(Percentile(0.50), 4), Math.Round(Percentile(0.95), 4),
            Math.Round(runs.Sum(r => r.Samples.Length) / runs.Sum(r => r.Seconds), 3), runs.Sum(r => r.Samples.Sum(s => s.Retries)),
            runs.Select(r => Math.Round(r.VideosPerSecond, 3)).ToArray());
    }
}
