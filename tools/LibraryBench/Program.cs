// What the video library costs, measured side by side in one run on this machine:
//
// search (in this process): SearchIndex (the service's own class) holding N synthetic clip vectors (uniform
//   random, L2-normalized, 10 clips per entry, owners among 10, a tag on half) of --dimension numbers. Per N:
//   the build time; then, after a warm-up (tiered JIT), interleaved over --rounds (so a noisy machine's drift hits both), the memory-
//   bandwidth bound (the best time to read the same number of floats once, sequentially: TensorPrimitives.Sum
//   over one array, on one thread and on two halves at once) and --queries clip-scope searches, k = 10, one at
//   a time (latency) and --concurrency at a time (queries/s), plus the same with an owner filter admitting a
//   tenth of the rows. Search ÷ bound says how far the exact scan is from reading the matrix once. The top-10 of
//   a few queries is checked against a naive double-precision scan; a difference fails the run.
// ingest and classify (through the real server, a child process on a temporary data folder, SQLite, CPU):
//   every video of --videos stored with POST /v1/videos (new), then all again (already stored: answered from the
//   store), at --ingest-concurrency; then for each stored video, interleaved over --classify-rounds,
//   POST /v1/videos/{id}/classify (stored embeddings) against POST /v1/classify (upload, decode, encoder)
//   with the same probe; the top labels must agree.
//
//   dotnet run -c Release --project tools/LibraryBench -- [--out docs/results/library-bench.json]
//     [--parts search,ingest,classify] [--rows 100000,1000000] [--dimension 512] [--queries 60] [--rounds 3]
//     [--concurrency 2] [--videos samples/synthmotion] [--models models] [--probe scene-and-motion]
//     [--ingest-concurrency 2] [--classify-rounds 3] [--server PATH/CvrlServe.Api.dll]
using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Numerics.Tensors;
using System.Text.Json;
using CvrlServe.Api.Library;
using CvrlServe.Tools;

var options = new Dictionary<string, string>
{
    ["--parts"] = "search,ingest,classify",
    ["--rows"] = "100000,1000000",
    ["--dimension"] = "512",
    ["--queries"] = "60",
    ["--rounds"] = "3",
    ["--concurrency"] = "2",
    ["--videos"] = "samples/synthmotion",
    ["--models"] = "models",
    ["--probe"] = "scene-and-motion",
    ["--ingest-concurrency"] = "2",
    ["--classify-rounds"] = "3",
};
for (int i = 0; i + 1 < args.Length; i += 2)
{
    options[args[i]] = args[i + 1];
}

string root = ChildServer.RepositoryRoot();
var parts = options["--parts"].Split(',').ToHashSet(StringComparer.Ordinal);
var report = new Dictionary<string, object>
{
    ["command"] = "dotnet run -c Release --project tools/LibraryBench -- " + string.Join(' ', args),
    ["machine"] = new { cores = Environment.ProcessorCount, os = System.Runtime.InteropServices.RuntimeInformation.OSDescription, loadAverageAtStart = ChildServer.LoadAverage() },
};
Console.WriteLine($"{Environment.ProcessorCount} cores; load average {ChildServer.LoadAverage()}");

if (parts.Contains("search"))
{
    int dimension = Int("--dimension");
    report["search"] = options["--rows"].Split(',').Select(r => SearchBench.Run(int.Parse(r, CultureInfo.InvariantCulture), dimension, Int("--queries"), Int("--rounds"), Int("--concurrency"))).ToArray();
}

if (parts.Contains("ingest") || parts.Contains("classify"))
{
    string serverDll = options.TryGetValue("--server", out string? given) ? Path.GetFullPath(given) : Path.Combine(root, "src/CvrlServe.Api/bin/Release/net10.0/CvrlServe.Api.dll");
    if (!File.Exists(serverDll))
    {
        throw new FileNotFoundException($"{serverDll} is missing: dotnet build src/CvrlServe.Api -c Release");
    }

    string work = Directory.CreateTempSubdirectory("cvrl-library-bench-").FullName;
    try
    {
        using var server = ChildServer.Start(serverDll, new Dictionary<string, string>
        {
            ["Cvrl__ModelsFolder"] = Path.GetFullPath(options["--models"], root),
            ["Cvrl__DataFolder"] = Path.Combine(work, "data"),
            ["Cvrl__Provider"] = "Cpu",
            ["Cvrl__RateLimit__PermitsPerWindow"] = "0",
            ["Cvrl__Library__JobAboveSeconds"] = "100000",
        });
        using var http = await server.ReadyClientAsync();
        var videos = Directory.EnumerateFiles(Path.GetFullPath(options["--videos"], root), "*.mp4", SearchOption.AllDirectories).Order(StringComparer.Ordinal)
            .Select(path => (Path: path, Bytes: File.ReadAllBytes(path))).ToArray();
        var ids = new Dictionary<string, string>(StringComparer.Ordinal);
        var ingest = new List<object>();
        int concurrency = Int("--ingest-concurrency");
        foreach (string pass in new[] { "new", "already stored" })
        {
            var clock = Stopwatch.StartNew();
            await Parallel.ForEachAsync(videos, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, async (video, ct) =>
            {
                using var form = Form(video.Bytes, Path.GetFileName(video.Path));
                using var response = await http.PostAsync(new Uri("/v1/videos", UriKind.Relative), form, ct);
                var expected = pass == "new" ? HttpStatusCode.Created : HttpStatusCode.OK;
                var body = await Json(response, expected);
                lock (ids)
                {
                    ids[video.Path] = body.GetProperty("id").GetString()!;
                }
            });
            double perSecond = videos.Length / clock.Elapsed.TotalSeconds;
            Console.WriteLine($"ingest ({pass}): {videos.Length} videos at concurrency {concurrency}: {clock.Elapsed.TotalSeconds:F2} s, {perSecond:F1} videos/s");
            ingest.Add(new { pass, videos = videos.Length, concurrency, seconds = Math.Round(clock.Elapsed.TotalSeconds, 3), videosPerSecond = Math.Round(perSecond, 2) });
        }

        report["ingest"] = ingest;
        if (parts.Contains("classify"))
        {
            report["classify"] = await ClassifyAsync(http, videos, ids, options["--probe"], Int("--classify-rounds"));
        }
    }
    finally
    {
        Directory.Delete(work, recursive: true);
    }
}

report["loadAverageAtEnd"] = ChildServer.LoadAverage();
if (options.TryGetValue("--out", out string? outPath))
{
    Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(outPath))!);
    await File.WriteAllTextAsync(outPath, JsonSerializer.Serialize(report, new JsonSerializerOptions { WriteIndented = true, PropertyNamingPolicy = JsonNamingPolicy.CamelCase }) + "\n");
    Console.WriteLine($"wrote {outPath}");
}

return 0;

int Int(string name) => int.Parse(options[name], CultureInfo.InvariantCulture);

static MultipartFormDataContent Form(byte[] bytes, string name, params (string Name, string Value)[] fields)
{
    var form = new MultipartFormDataContent { { new ByteArrayContent(bytes), "file", name } };
    foreach (var (field, value) in fields)
    {
        form.Add(new StringContent(value), field);
    }

    return form;
}

static async Task<JsonElement> Json(HttpResponseMessage response, HttpStatusCode expected)
{
    string body = await response.Content.ReadAsStringAsync();
    return response.StatusCode == expected
        ? JsonDocument.Parse(body).RootElement.Clone()
        : throw new InvalidOperationException($"{response.RequestMessage?.RequestUri}: expected {(int)expected}, got {(int)response.StatusCode}: {body}");
}

static async Task<object> ClassifyAsync(HttpClient http, (string Path, byte[] Bytes)[] videos, Dictionary<string, string> ids, string probe, int rounds)
{
    var stored = new List<double>();
    var uploaded = new List<double>();
    int mismatches = 0;
    for (int round = 0; round < rounds; round++)
    {
        foreach (var video in videos)
        {
            var clock = Stopwatch.StartNew();
            using var fromStore = await http.PostAsync(new Uri($"/v1/videos/{ids[video.Path]}/classify?probe={probe}", UriKind.Relative), null);
            var a = await Json(fromStore, HttpStatusCode.OK);
            stored.Add(clock.Elapsed.TotalMilliseconds);
            clock.Restart();
            using var form = Form(video.Bytes, Path.GetFileName(video.Path), ("probe", probe), ("topK", "1"));
            using var fromUpload = await http.PostAsync(new Uri("/v1/classify", UriKind.Relative), form);
            var b = await Json(fromUpload, HttpStatusCode.OK);
            uploaded.Add(clock.Elapsed.TotalMilliseconds);
            if (a.GetProperty("labels")[0].GetProperty("label").GetString() != b.GetProperty("labels")[0].GetProperty("label").GetString())
            {
                mismatches++;
            }
        }
    }

    double p50Stored = SearchBench.Percentile(stored, 0.5);
    double p50Upload = SearchBench.Percentile(uploaded, 0.5);
    Console.WriteLine($"classify ({videos.Length} videos × {rounds} rounds, probe {probe}): stored p50 {p50Stored:F1} ms, p95 {SearchBench.Percentile(stored, 0.95):F1} ms; "
        + $"upload p50 {p50Upload:F1} ms, p95 {SearchBench.Percentile(uploaded, 0.95):F1} ms; upload ÷ stored = {p50Upload / p50Stored:F1}; top labels differing: {mismatches}");
    return new
    {
        probe,
        videos = videos.Length,
        rounds,
        storedP50Ms = Math.Round(p50Stored, 2),
        storedP95Ms = Math.Round(SearchBench.Percentile(stored, 0.95), 2),
        uploadP50Ms = Math.Round(p50Upload, 2),
        uploadP95Ms = Math.Round(SearchBench.Percentile(uploaded, 0.95), 2),
        uploadOverStored = Math.Round(p50Upload / p50Stored, 1),
        topLabelMismatches = mismatches,
    };
}

/// <summary>The in-process search measurements at one size.</summary>
internal static class SearchBench
{
    private const int ClipsPerEntry = 10;
    private const int K = 10;

    public static object Run(int rows, int dimension, int queries, int rounds, int concurrency)
    {
        GC.Collect();
        GC.WaitForPendingFinalizers();
        GC.Collect();
        var random = new Random(20261203);
        float[] matrix = new float[(long)rows * dimension <= Array.MaxLength ? rows * dimension : throw new ArgumentOutOfRangeException(nameof(rows))];
        for (int r = 0; r < rows; r++)
        {
            var row = matrix.AsSpan(r * dimension, dimension);
            for (int d = 0; d < dimension; d++)
            {
                row[d] = (random.NextSingle() * 2) - 1;
            }

            TensorPrimitives.Divide(row, TensorPrimitives.Norm(row), row);
        }

        var entries = Enumerable.Range(0, rows / ClipsPerEntry)
            .Select(e => new IndexedEntry($"{e:x32}", "owner" + (e % 10), $"video-{e}", e % 2 == 0 ? new HashSet<string> { "tagged" } : new HashSet<string>()))
            .ToArray();
        var clock = Stopwatch.StartNew();
        using var index = new SearchIndex(dimension);
        for (int e = 0; e < entries.Length; e++)
        {
            var clips = Enumerable.Range(0, ClipsPerEntry).Select(c => (c, c * 1.0, c + 1.0, matrix.AsSpan(((e * ClipsPerEntry) + c) * dimension, dimension).ToArray())).ToArray();
            index.Upsert(entries[e], clips[0].Item4, clips);
        }

        double build = clock.Elapsed.TotalSeconds;
        var probes = Enumerable.Range(0, queries).Select(_ =>
        {
            float[] q = Enumerable.Range(0, dimension).Select(_ => (random.NextSingle() * 2) - 1).ToArray();
            TensorPrimitives.Divide(q, TensorPrimitives.Norm(q), q);
            return q;
        }).ToArray();
        Check(index, matrix, entries, probes.Take(3).ToArray(), dimension);
        // Warm-up: the scan loop is compiled at full optimization only after it has run a while (tiered JIT).
        for (int i = 0; i < 60; i++)
        {
            _ = index.Search(probes[i % probes.Length], K, SearchScope.Clip);
            _ = index.Search(probes[i % probes.Length], K, SearchScope.Clip, e => e.Owner == "owner3");
        }

        var boundOne = new List<double>();
        var boundTwo = new List<double>();
        var latency = new List<double>();
        var filtered = new List<double>();
        var throughput = new List<double>();
        for (int round = 0; round < rounds; round++)
        {
            boundOne.Add(Best(3, () => TensorPrimitives.Sum(matrix)));
            boundTwo.Add(Best(3, () => Parallel.For(0, 2, h => TensorPrimitives.Sum(matrix.AsSpan(h * (matrix.Length / 2), matrix.Length / 2)))));
            foreach (float[] q in probes)
            {
                var one = Stopwatch.StartNew();
                _ = index.Search(q, K, SearchScope.Clip);
                latency.Add(one.Elapsed.TotalMilliseconds);
            }

            foreach (float[] q in probes)
            {
                var one = Stopwatch.StartNew();
                _ = index.Search(q, K, SearchScope.Clip, e => e.Owner == "owner3");
                filtered.Add(one.Elapsed.TotalMilliseconds);
            }

            var all = Stopwatch.StartNew();
            Parallel.ForEach(probes, new ParallelOptions { MaxDegreeOfParallelism = concurrency }, q => index.Search(q, K, SearchScope.Clip));
            throughput.Add(probes.Length / all.Elapsed.TotalSeconds);
        }

        double bytes = (double)matrix.Length * sizeof(float);
        double bound1 = boundOne.Min();
        double bound2 = boundTwo.Min();
        double p50 = Percentile(latency, 0.5);
        Console.WriteLine($"search {rows:N0} clips × {dimension}: build {build:F1} s; bound (read {bytes / 1e9:F2} GB once) {bound1:F1} ms on 1 thread ({bytes / bound1 / 1e6:F1} GB/s), "
            + $"{bound2:F1} ms on 2 ({bytes / bound2 / 1e6:F1} GB/s); query p50 {p50:F1} ms, p95 {Percentile(latency, 0.95):F1} ms, ÷ 2-thread bound {p50 / bound2:F2}; "
            + $"owner-filtered p50 {Percentile(filtered, 0.5):F1} ms; {throughput.Median():F1} queries/s at {concurrency} at a time");
        return new
        {
            rows,
            dimension,
            entries = entries.Length,
            buildSeconds = Math.Round(build, 2),
            matrixGB = Math.Round(bytes / 1e9, 3),
            boundOneThreadMs = Math.Round(bound1, 2),
            boundTwoThreadsMs = Math.Round(bound2, 2),
            bandwidthOneThreadGBs = Math.Round(bytes / bound1 / 1e6, 2),
            bandwidthTwoThreadsGBs = Math.Round(bytes / bound2 / 1e6, 2),
            queryP50Ms = Math.Round(p50, 2),
            queryP95Ms = Math.Round(Percentile(latency, 0.95), 2),
            queryOverTwoThreadBound = Math.Round(p50 / bound2, 2),
            ownerFilteredP50Ms = Math.Round(Percentile(filtered, 0.5), 2),
            queriesPerSecond = Math.Round(throughput.Median(), 2),
            concurrency,
            queries,
            rounds,
        };
    }

    /// <summary>The index's top-10 must be the naive double-precision scan's (the same rows in the same order).</summary>
    private static void Check(SearchIndex index, float[] matrix, IndexedEntry[] entries, float[][] queries, int dimension)
    {
        foreach (float[] q in queries)
        {
            var naive = Enumerable.Range(0, matrix.Length / dimension)
                .Select(r => (Row: r, Score: Dot(matrix.AsSpan(r * dimension, dimension), q)))
                .OrderByDescending(x => x.Score).ThenBy(x => x.Row).Take(K)
                .Select(x => (entries[x.Row / ClipsPerEntry].Id, x.Row % ClipsPerEntry)).ToArray();
            var hits = index.Search(q, K, SearchScope.Clip).Select(h => (h.Entry.Id, h.Clip ?? -1)).ToArray();
            if (!naive.SequenceEqual(hits))
            {
                throw new InvalidOperationException($"the index's top {K} differs from the naive scan's: {string.Join(' ', hits)} vs {string.Join(' ', naive)}");
            }
        }
    }

    private static double Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        double sum = 0;
        for (int i = 0; i < a.Length; i++)
        {
            sum += a[i] * (double)b[i];
        }

        return sum;
    }

    private static double Best(int tries, Action read)
    {
        double best = double.MaxValue;
        for (int i = 0; i < tries; i++)
        {
            var clock = Stopwatch.StartNew();
            read();
            best = Math.Min(best, clock.Elapsed.TotalMilliseconds);
        }

        return best;
    }

    private static double Median(this IEnumerable<double> values) => Percentile(values.ToArray(), 0.5);

    /// <summary>The nearest-rank percentile (p in [0, 1]).</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        var sorted = values.Order().ToArray();
        return sorted[Math.Clamp((int)Math.Ceiling(p * sorted.Length) - 1, 0, sorted.Length - 1)];
    }
}
