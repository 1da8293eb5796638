using System.Collections.Concurrent;
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using CvrlServe.Core.Video;
using Microsoft.Extensions.DependencyInjection;
using Xunit.Abstractions;

namespace CvrlServe.Api.Tests.Load;

/// <summary>
/// The service under a bounded mixed load, over real loopback (Kestrel in this process): 300 requests at
/// concurrency 16 of every kind a client sends, good and bad. What must hold afterwards: every answer is
/// 200 or a documented problem, no upload or ffmpeg process is left, the decoded-memory budget held, and
/// the process's resident memory stayed within idle + budget + a stated margin.
/// </summary>
[Collection(LoadTestsAlone.Name)]
public sealed class LoadTests(ApiVideos videos, ITestOutputHelper output)
{
    private const int Requests = 300;
    private const int Concurrency = 16;

    // Small enough that a few 64-clip requests fill it (about 5 MB each with the tiny model, see Run), so
    // requests wait for memory and, past two waiting, are refused with 503.
    private const long BudgetBytes = 16L * 1024 * 1024;
    private const int MaxWaiting = 2;
    private const long MaxUploadBytes = 1024 * 1024;

    /// <summary>
    /// What resident memory may grow by beyond idle + the decoded-memory budget: managed heaps that grow
    /// under 16 concurrent requests before a GC (client and server buffers of uploads up to 1.25 MiB, JSON,
    /// Kestrel's pools, GC gen0 budgets per heap), ONNX Runtime's CPU arena growing for batches of up to 64
    /// clips, ML.NET's pooled prediction engines, and thread stacks. The 64-clip requests' own tensors are
    /// inside the budget. 256 MiB is several times what those add on this 2-core machine (the run reports
    /// the measured growth), and far below what one unbudgeted decode of the oversize payloads would take.
    /// </summary>
    private const long RssMarginBytes = 256L * 1024 * 1024;

    private enum Kind
    {
        Embed,
        EmbedHeavy,
        Classify,
        ClassifyEmbedding,
        TextFile,
        Truncated,
        BadOption,
        UnknownModel,
        Oversize,
    }

    [Fact]
    public async Task MixedLoad_DocumentedAnswersOnly_NothingLeft_MemoryBounded()
    {
        var total = Stopwatch.StartNew();
        await using var app = new CvrlApiFactory(new Dictionary<string, string?>
        {
            ["Cvrl:DecodedMemoryBudgetBytes"] = BudgetBytes.ToString(CultureInfo.InvariantCulture),
            ["Cvrl:MaxWaitingDecodes"] = MaxWaiting.ToString(CultureInfo.InvariantCulture),
            ["Cvrl:MaxUploadBytes"] = MaxUploadBytes.ToString(CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Default"] = "Error",
        });
        app.UseKestrel(0);
        app.StartServer();
        await app.Services.GetRequiredService<CvrlServe.Api.Hosting.ModelRegistryService>().Started.WaitAsync(TimeSpan.FromMinutes(2));
        var reader = app.Services.GetRequiredService<VideoReader>();
        using var client = app.Client();
        using var admin = app.Client(CvrlApiFactory.AdminKey);
        client.Timeout = admin.Timeout = TimeSpan.FromMinutes(2);
        Assert.Equal("127.0.0.1", client.BaseAddress?.Host);

        var valid = new[] { "red-0.mp4", "red-1.mp4", "red-2.mp4", "blue-0.mp4", "blue-1.mp4", "blue-2.mp4", "moving.mp4" };
        var bytes = valid.Concat(["text.mp4", "truncated.mp4"]).ToDictionary(n => n, n => File.ReadAllBytes(videos.Path(n)));
        Assert.All(bytes.Values, b => Assert.True(b.Length < MaxUploadBytes));
        // Past the limit but within what Kestrel drains after the 413 (the limit + 1 MiB), so the client reads
        // the answer instead of a reset connection.
        var oversize = new byte[MaxUploadBytes + 256 * 1024];
        new Random(7).NextBytes(oversize);

        // A probe trained through the JSON endpoint on the red and blue videos' embeddings.
        var examples = new List<object>();
        string modelId = "";
        foreach (string name in valid.Where(n => n.StartsWith("red", StringComparison.Ordinal) || n.StartsWith("blue", StringComparison.Ordinal)))
        {
            using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), Form(bytes[name], name));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var json = await response.Content.ReadFromJsonAsync<JsonElement>();
            modelId = json.GetProperty("modelId").GetString()!;
            examples.Add(new { label = name.Split('-')[0], embedding = json.GetProperty("embedding") });
        }

        using (var trained = await admin.PostAsJsonAsync(new Uri("/v1/probes", UriKind.Relative), new { name = "colour", model = CvrlApiFactory.Model, modelId, examples }))
        {
            Assert.Equal(HttpStatusCode.Created, trained.StatusCode);
        }

        using var probeEmbedding = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), Form(bytes["moving.mp4"], "moving.mp4"));
        var embedding = (await probeEmbedding.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("embedding");

        // Requests of each kind, shuffled with a fixed seed. What costs is starting ffmpeg and ffprobe (about
        // 0.25 CPU s a process on this machine, measured: an embedding ~0.75 CPU s, a classify with its
        // timeline thumbnails ~1 s, a text file's ffprobe ~0.4 s, against ~0.01 s for the others), so those
        // 48 requests are ~30 CPU s and keep the run within a minute on 2 shared cores.
        var plan = new List<(Kind Kind, string Video)>();
        void Add(Kind kind, int count)
        {
            for (int i = 0; i < count; i++)
            {
                plan.Add((kind, valid[i % valid.Length]));
            }
        }

        Add(Kind.Embed, 16);
        Add(Kind.EmbedHeavy, 8);
        Add(Kind.Classify, 8);
        Add(Kind.TextFile, 8);
        Add(Kind.Truncated, 8);
        Add(Kind.ClassifyEmbedding, 80);
        Add(Kind.BadOption, 62);
        Add(Kind.UnknownModel, 62);
        Add(Kind.Oversize, 48);
        Assert.Equal(Requests, plan.Count);
        var rng = new Random(11);
        var order = plan.OrderBy(_ => rng.Next()).ToArray();

        HttpRequestMessage Build((Kind Kind, string Video) r) => r.Kind switch
        {
            Kind.Embed => Post("/v1/embeddings", Form(bytes[r.Video], r.Video)),
            Kind.EmbedHeavy => Post("/v1/embeddings", Form(bytes["moving.mp4"], "moving.mp4", ("clips", "64"), ("perClip", "true"))),
            Kind.Classify => Post("/v1/classify", Form(bytes[r.Video], r.Video, ("probe", "colour"), ("all", "true"), ("timeline", "true"),
                ("thumbnails", r.Video.StartsWith("red", StringComparison.Ordinal) ? "true" : "false"))),
            Kind.ClassifyEmbedding => Post("/v1/classify/embedding", JsonContent.Create(new { probe = "colour", modelId, embedding })),
            Kind.TextFile => Post("/v1/embeddings", Form(bytes["text.mp4"], "text.mp4")),
            Kind.Truncated => Post("/v1/embeddings", Form(bytes["truncated.mp4"], "truncated.mp4")),
            Kind.BadOption => Post("/v1/embeddings", Form(bytes[r.Video], r.Video, ("clips", "0"))),
            Kind.UnknownModel => Post("/v1/classify", Form(bytes[r.Video], r.Video, ("probe", "colour"), ("model", "nope"))),
            _ => Post("/v1/embeddings", Form(oversize, "big.mp4")),
        };

        // Warm: one request of every kind, then the idle resident set the bound is measured from.
        foreach (var kind in Enum.GetValues<Kind>())
        {
            using var warm = await client.SendAsync(Build((kind, valid[0])));
            await warm.Content.ReadAsByteArrayAsync();
        }

        GC.Collect();
        GC.WaitForPendingFinalizers();
        long idleRss = ResidentBytes();

        using var stop = new CancellationTokenSource();
        var samples = new ConcurrentBag<(long InUse, long Rss)>();
        var sampler = Task.Run(async () =>
        {
            using var scraper = app.Client();
            while (!stop.IsCancellationRequested)
            {
                string metrics = await scraper.GetStringAsync(new Uri("/metrics", UriKind.Relative));
                samples.Add((Gauge(metrics, "cvrlserve_decoded_memory_in_use"), ResidentBytes()));
                Assert.Equal(BudgetBytes, Gauge(metrics, "cvrlserve_decoded_memory_budget"));
                try
                {
                    await Task.Delay(50, stop.Token);
                }
                catch (OperationCanceledException)
                {
                }
            }
        });

        var load = Stopwatch.StartNew();
        double cpuBefore = CpuSeconds();
        var outcomes = new ConcurrentBag<(Kind Kind, int Status, double Seconds)>();
        await Parallel.ForEachAsync(order, new ParallelOptions { MaxDegreeOfParallelism = Concurrency }, async (r, ct) =>
        {
            var clock = Stopwatch.StartNew();
            using var response = await client.SendAsync(Build(r), ct);
            string body = await response.Content.ReadAsStringAsync(ct);
            int status = (int)response.StatusCode;
            outcomes.Add((r.Kind, status, clock.Elapsed.TotalSeconds));
            Assert.True(Expected(r.Kind).Contains(status), $"{r.Kind} {r.Video}: {status} {body}");
            if (status != 200)
            {
                Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
                string? type = JsonDocument.Parse(body).RootElement.GetProperty("type").GetString();
                Assert.StartsWith(CvrlServe.Api.Hosting.Problems.TypePrefix, type, StringComparison.Ordinal);
            }

            if (status is 503 or 429)
            {
                Assert.True(response.Headers.RetryAfter?.Delta > TimeSpan.Zero, $"{r.Kind}: {status} without Retry-After");
            }
        });
        load.Stop();
        double cpu = CpuSeconds() - cpuBefore;
        await stop.CancelAsync();
        await sampler;

        output.WriteLine($"{Requests} requests at concurrency {Concurrency} in {load.Elapsed.TotalSeconds:F1} s ({Requests / load.Elapsed.TotalSeconds:F1} requests/s), "
            + $"{cpu:F1} CPU s (this process and its reaped ffmpeg children) on {Environment.ProcessorCount} cores");
        foreach (var group in outcomes.GroupBy(o => o.Kind).OrderBy(g => g.Key))
        {
            output.WriteLine($"  {group.Key,-18} mean {group.Average(o => o.Seconds):F2} s, max {group.Max(o => o.Seconds):F2} s: "
                + string.Join(", ", group.GroupBy(o => o.Status).OrderBy(s => s.Key).Select(s => $"{s.Key}×{s.Count()}")));
        }

        Assert.Equal(Requests, outcomes.Count);
        Assert.All(Enum.GetValues<Kind>(), k => Assert.Contains(outcomes, o => o.Kind == k && o.Status == Expected(k)[0]));

        // Nothing left behind: uploads deleted, every ffmpeg and ffprobe reaped.
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
        var children = await NoToolChildrenAsync();
        Assert.True(children.Count == 0, "ffmpeg/ffprobe children left: " + string.Join(", ", children));

        // Memory: the budget held (the gauge as scraped, and the reader's own peak), and so did the process.
        long peakGauge = samples.Max(s => s.InUse);
        long peakRss = Math.Max(samples.Max(s => s.Rss), ResidentBytes());
        output.WriteLine($"{samples.Count} samples: budget in use peak {Mib(peakGauge)} (reader's peak {Mib(reader.MemoryBudget.PeakBytes)}) of {Mib(BudgetBytes)}; "
            + $"RSS idle {Mib(idleRss)}, peak {Mib(peakRss)} (+{Mib(peakRss - idleRss)}; bound +{Mib(BudgetBytes + RssMarginBytes)})");
        Assert.True(samples.Count >= 10, $"only {samples.Count} metric samples");
        Assert.True(peakGauge <= BudgetBytes, $"gauge {peakGauge} > budget {BudgetBytes}");
        Assert.True(reader.MemoryBudget.PeakBytes <= reader.MemoryBudget.CapacityBytes);
        Assert.Equal(0, reader.MemoryBudget.InUseBytes);
        Assert.True(peakRss <= idleRss + BudgetBytes + RssMarginBytes, $"RSS {Mib(peakRss)} > idle {Mib(idleRss)} + budget + margin");

        output.WriteLine($"test total {total.Elapsed.TotalSeconds:F1} s");
        Assert.True(load.Elapsed < TimeSpan.FromMinutes(3), "the load took far longer than its ~30 s: something hangs");
    }

    /// <summary>What each kind may be answered: its own status first, then 503 where it reserves decode memory or encoder queue.</summary>
    private static int[] Expected(Kind kind) => kind switch
    {
        Kind.Embed or Kind.EmbedHeavy or Kind.Classify => [200, 503],
        Kind.ClassifyEmbedding => [200],
        Kind.TextFile => [415],
        Kind.Truncated => [422, 503],
        Kind.BadOption => [400],
        Kind.UnknownModel => [404],
        _ => [413],
    };

    private static HttpRequestMessage Post(string path, HttpContent content) => new(HttpMethod.Post, new Uri(path, UriKind.Relative)) { Content = content };

    private static MultipartFormDataContent Form(byte[] video, string fileName, params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(video);
        file.Headers.ContentType = new System.Net.Http.Headers.MediaTypeHeaderValue("video/mp4");
        form.Add(file, "file", fileName);
        foreach (var (name, value) in fields)
        {
            form.Add(new StringContent(value), name);
        }

        return form;
    }

    /// <summary>The value of an unlabelled gauge in Prometheus text (its name, optionally with a unit suffix).</summary>
    private static long Gauge(string metrics, string name)
    {
        foreach (string line in metrics.Split('\n'))
        {
            if (line.StartsWith(name, StringComparison.Ordinal) && line.IndexOf(' ', StringComparison.Ordinal) is var space and > 0
                && !line[..space].Contains('{', StringComparison.Ordinal) && (space == name.Length || line[name.Length] == '_'))
            {
                return (long)double.Parse(line[(space + 1)..], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"{name} is not in /metrics");
    }

    /// <summary>This process's resident set (VmRSS), in bytes.</summary>
    private static long ResidentBytes()
    {
        string line = File.ReadLines("/proc/self/status").First(l => l.StartsWith("VmRSS:", StringComparison.Ordinal));
        return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], CultureInfo.InvariantCulture) * 1024;
    }

    /// <summary>CPU seconds of this process and its children already reaped (utime, stime, cutime, cstime of /proc/self/stat).</summary>
    private static double CpuSeconds()
    {
        string stat = File.ReadAllText("/proc/self/stat");
        string[] fields = stat[(stat.LastIndexOf(')') + 2)..].Split(' ');
        // After "pid (comm) ", field 0 is the state; utime is field 11, then stime, cutime, cstime. Ticks are 1/100 s on Linux.
        return fields.Skip(11).Take(4).Sum(f => long.Parse(f, CultureInfo.InvariantCulture)) / 100.0;
    }

    /// <summary>ffmpeg/ffprobe processes (zombies included) whose parent is this process, after up to 2 s for the last to be reaped.</summary>
    private static async Task<List<string>> NoToolChildrenAsync()
    {
        var found = new List<string>();
        for (int attempt = 0; attempt < 20; attempt++)
        {
            found.Clear();
            foreach (string dir in Directory.EnumerateDirectories("/proc"))
            {
                string stat;
                try
                {
                    stat = File.ReadAllText(Path.Combine(dir, "stat"));
                }
                catch (Exception e) when (e is IOException or UnauthorizedAccessException)
                {
                    continue; // not a process, or it ended while we looked
                }

                // pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after the last ')'.
                int open = stat.IndexOf('(', StringComparison.Ordinal);
                int close = stat.LastIndexOf(')');
                if (open < 0 || close < open)
                {
                    continue;
                }

                string comm = stat[(open + 1)..close];
                string[] rest = stat[(close + 2)..].Split(' ');
                if (rest.Length > 1 && int.Parse(rest[1], CultureInfo.InvariantCulture) == Environment.ProcessId && comm is "ffmpeg" or "ffprobe")
                {
                    found.Add($"{comm} pid {stat[..(open - 1)]} state {rest[0]}");
                }
            }

            if (found.Count == 0)
            {
                break;
            }

            await Task.Delay(100);
        }

        return found;
    }

    private static string Mib(long bytes) => $"{bytes / (1024.0 * 1024):F1} MiB";
}

/// <summary>The load test runs alone: other tests' servers would share its ffmpeg children and its resident memory.</summary>
[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class LoadTestsAlone : ICollectionFixture<ApiVideos>
{
    public const string Name = "load";
}
