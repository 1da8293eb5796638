using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Training.Commands;

/// <summary>
/// <c>cvrl embed</c>: one JSON line per video, from a local ONNX model (<c>--model models/NAME</c>) or through a
/// CvrlServe service (<c>--server URL</c>). For collections: <c>--folder</c>/<c>--list</c> name the videos,
/// <c>--shard i/N</c> takes this worker's deterministic share (a Kubernetes Indexed Job's
/// <c>auto/N</c>), <c>--out</c> makes the run resumable, <c>--concurrency</c> embeds several at once.
/// </summary>
internal static class EmbedCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--per-clip", "--cpu", "--retry-failed" };

    private static readonly JsonSerializerOptions JsonLines = new(EncoderManifest.Json) { WriteIndented = false };

    public static async Task<int> RunAsync(CommandArgs args, TextWriter output, TextWriter error) =>
        await RunAsync(args, output, error, Environment.GetEnvironmentVariable).ConfigureAwait(false);

    public static async Task<int> RunAsync(CommandArgs args, TextWriter output, TextWriter error, Func<string, string?> environment)
    {
        string? server = args.Optional("--server");
        string? modelArgument = server is null ? args.Required("--model") : args.Optional("--model");
        bool perClip = args.Flag("--per-clip");
        bool cpu = args.Flag("--cpu");
        bool retryFailed = args.Flag("--retry-failed");
        string? list = args.Optional("--list");
        string? folder = args.Optional("--folder");
        string? shardText = args.Optional("--shard");
        string? outPath = args.Optional("--out");
        int concurrency = args.Int("--concurrency", 1, 1, 256);
        int attempts = args.Int("--retries", 5, 1, 100);
        double timeoutSeconds = args.Double("--timeout", 300, 1, 86400);
        string? apiKey = args.Optional("--api-key") ?? environment("CVRL_API_KEY");
        args.RejectUnknown();

        if ((list is not null ? 1 : 0) + (folder is not null ? 1 : 0) + (args.Positionals.Count > 0 ? 1 : 0) != 1)
        {
            throw new UsageException("Name the videos one way: VIDEO..., --list FILE or --folder DIR.");
        }

        if (server is not null && (!Uri.TryCreate(server, UriKind.Absolute, out var serverUri) || serverUri.Scheme is not ("http" or "https")))
        {
            throw new UsageException($"--server must be an http(s) URL (got '{server}').");
        }

        var listing = list is not null ? EmbedListing.FromList(list) : folder is not null ? EmbedListing.FromFolder(folder) : EmbedListing.FromArguments(args.Positionals);
        var shard = shardText is null ? new Shard(0, 1) : Shard.Parse(shardText, environment);
        var items = listing.Where(i => shard.Holds(i.Key)).ToArray();
        // "{shard}" in --out is this shard's index: one command line for every worker of an Indexed Job.
        outPath = outPath?.Replace("{shard}", shard.Index.ToString(System.Globalization.CultureInfo.InvariantCulture), StringComparison.Ordinal);

        using var cancel = new CancellationTokenSource();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;
            cancel.Cancel();
        };
        Console.CancelKeyPress += onCancel;
        try
        {
            return server is not null
                ? await RunServerAsync(new Uri(server), modelArgument, apiKey, attempts, TimeSpan.FromSeconds(timeoutSeconds), items, listing.Count, shard, outPath, perClip, retryFailed, concurrency, output, error, cancel.Token).ConfigureAwait(false)
                : await RunLocalAsync(modelArgument!, cpu, items, listing.Count, shard, outPath, perClip, retryFailed, concurrency, output, error, cancel.Token).ConfigureAwait(false);
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
    }

    private static async Task<int> RunLocalAsync(string modelFolder, bool cpu, EmbedItem[] items, int listed, Shard shard, string? outPath, bool perClip,
        bool retryFailed, int concurrency, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        var options = new EncoderSessionOptions { Provider = cpu ? ProviderPreference.Cpu : ProviderPreference.Cuda, WarmUp = false, InferenceTimeout = Timeout.InfiniteTimeSpan };
        EncoderModel model;
        try
        {
            model = await EncoderModel.LoadAsync(modelFolder, options, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (ModelLoadException e)
        {
            error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }

        await using var owned = model;
        using var reader = new VideoReader();
        var embedder = new VideoEmbedder(reader);
        return await RunAsync(model.Manifest.ModelId, items, listed, shard, outPath, retryFailed, concurrency, output, error, async (item, ct) =>
        {
            try
            {
                var result = await embedder.EmbedAsync(model, item.Path, cancellationToken: ct).ConfigureAwait(false);
                return JsonSerializer.SerializeToNode(Line(item.Key, result, model.Session.Provider, perClip), JsonLines)!.AsObject();
            }
            catch (CvrlException e)
            {
                return Failure(item.Key, model.Manifest.ModelId, e.Kind.ToString(), e.Message, null);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    private static async Task<int> RunServerAsync(Uri server, string? modelName, string? apiKey, int attempts, TimeSpan timeout, EmbedItem[] items, int listed, Shard shard,
        string? outPath, bool perClip, bool retryFailed, int concurrency, TextWriter output, TextWriter error, CancellationToken cancellationToken)
    {
        using var client = new ServerEmbedClient(server, apiKey, attempts, timeout, TimeSpan.FromSeconds(0.5), error);
        string name, modelId;
        try
        {
            (name, modelId) = await client.ModelAsync(modelName, cancellationToken).ConfigureAwait(false);
        }
        catch (ServerRefusedException e)
        {
            error.WriteLine($"cvrl: {server}: {e.Message}");
            return 1;
        }

        int code = await RunAsync(modelId, items, listed, shard, outPath, retryFailed, concurrency, output, error, async (item, ct) =>
        {
            try
            {
                using var answer = await client.EmbedAsync(item.Path, name, perClip, ct).ConfigureAwait(false);
                return ServerLine(item.Key, answer.RootElement, perClip);
            }
            catch (ServerRefusedException e)
            {
                return Failure(item.Key, modelId, e.Kind, e.Message, e.Status == 0 ? null : e.Status);
            }
            catch (IOException e)
            {
                return Failure(item.Key, modelId, "io", e.Message, null);
            }
        }, cancellationToken).ConfigureAwait(false);
        error.WriteLine($"cvrl embed: {client.Attempts} request(s) to {server}");
        return code;
    }

    /// <summary>The loop both modes share: skip what the output already holds, embed the rest, write each line as it ends.</summary>
    private static async Task<int> RunAsync(string modelId, EmbedItem[] items, int listed, Shard shard, string? outPath, bool retryFailed, int concurrency,
        TextWriter output, TextWriter error, Func<EmbedItem, CancellationToken, Task<JsonObject>> embed, CancellationToken cancellationToken)
    {
        using var sink = outPath is null ? EmbedOutput.ToWriter(output) : EmbedOutput.OpenFile(outPath, modelId);
        if (sink.DroppedBytes > 0)
        {
            error.WriteLine($"cvrl embed: dropped a torn last line ({sink.DroppedBytes} bytes) of {outPath}");
        }

        int doneBefore = items.Count(i => sink.Previous.GetValueOrDefault(i.Key));
        int failedBefore = retryFailed ? 0 : items.Count(i => sink.Previous.TryGetValue(i.Key, out bool ok) && !ok);
        var todo = items.Where(i => !sink.Previous.TryGetValue(i.Key, out bool ok) || (!ok && retryFailed)).ToArray();
        int embedded = 0, failed = 0;
        await Parallel.ForEachAsync(todo, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, concurrency), CancellationToken = cancellationToken }, async (item, ct) =>
        {
            var line = await embed(item, ct).ConfigureAwait(false);
            bool failure = line["error"] is JsonObject;
            if (!failure || sink.IsFile)
            {
                sink.Write(line);
            }

            if (line["error"] is JsonObject problem)
            {
                Interlocked.Increment(ref failed);
                error.WriteLine($"cvrl: {item.Key}: {problem["message"]?.GetValue<string>()}");
            }
            else
            {
                Interlocked.Increment(ref embedded);
            }
        }).ConfigureAwait(false);

        error.WriteLine($"cvrl embed: shard {shard.Index}/{shard.Count}: {items.Length} of {listed} listed video(s); {doneBefore} done before, {embedded} embedded now, " +
            $"{failed} failed now{(failedBefore > 0 ? $", {failedBefore} failed before (not retried without --retry-failed)" : "")}");
        return failed + failedBefore == 0 ? 0 : 1;
    }

    private static JsonObject Failure(string video, string modelId, string kind, string message, int? status)
    {
        var problem = new JsonObject { ["kind"] = kind, ["message"] = message };
        if (status is { } value)
        {
            problem["status"] = value;
        }

        return new JsonObject { ["video"] = video, ["modelId"] = modelId, ["error"] = problem };
    }

    /// <summary>The service's answer in the local line's shape (clip times in seconds, timings in milliseconds).</summary>
    private static JsonObject ServerLine(string video, JsonElement answer, bool perClip)
    {
        var line = new JsonObject
        {
            ["video"] = video,
            ["model"] = answer.GetProperty("model").GetString(),
            ["modelId"] = answer.GetProperty("modelId").GetString(),
            ["dimension"] = answer.GetProperty("dimension").GetInt32(),
            ["embedding"] = JsonNode.Parse(answer.GetProperty("embedding").GetRawText()),
            ["sha256"] = answer.GetProperty("sha256").GetString(),
        };
        if (perClip && answer.TryGetProperty("clips", out var clips) && clips.ValueKind == JsonValueKind.Array)
        {
            line["clips"] = new JsonArray(clips.EnumerateArray().Select(c => (JsonNode)new JsonObject
            {
                ["clip"] = c.GetProperty("clip").GetInt32(),
                ["startSeconds"] = c.GetProperty("start").GetDouble(),
                ["endSeconds"] = c.GetProperty("end").GetDouble(),
                ["embedding"] = JsonNode.Parse(c.GetProperty("embedding").GetRawText()),
            }).ToArray());
        }

        if (answer.TryGetProperty("timings", out var timings) && timings.ValueKind == JsonValueKind.Object)
        {
            // The service reports seconds; the line keeps the local mode's milliseconds.
            var milliseconds = new JsonObject();
            foreach (var stage in timings.EnumerateObject())
            {
                milliseconds[stage.Name] = stage.Value.GetDouble() * 1000;
            }

            line["timingsMs"] = milliseconds;
        }

        return line;
    }

    private static object Line(string video, VideoEmbedding result, string provider, bool perClip) => new
    {
        video,
        model = result.Model,
        result.ModelId,
        result.Dimension,
        provider,
        result.Embedding,
        clips = perClip
            ? result.Clips.Select(c => new { c.Clip, startSeconds = c.Start.TotalSeconds, endSeconds = c.End.TotalSeconds, c.Embedding })
            : null,
        timingsMs = new
        {
            probe = result.Timings.Probe.TotalMilliseconds,
            decode = result.Timings.Decode.TotalMilliseconds,
            queue = result.Timings.Queue.TotalMilliseconds,
            inference = result.Timings.Inference.TotalMilliseconds,
            total = result.Timings.Total.TotalMilliseconds,
        },
    };
}
