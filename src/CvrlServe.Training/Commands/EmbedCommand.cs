using System.Runtime.InteropServices;
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
/// Each video ends one of three ways: embedded; refused for good (not a video, undecodable, past a limit:
/// recorded in <c>--out</c> and not tried again without <c>--retry-failed</c>); or unfinished (the server
/// unreachable after the retries, a bad answer, an unexpected error: not recorded, so the next run tries it
/// again). With <c>--library</c> the service stores each video in its library (<c>POST /v1/videos</c>, following
/// the job of a long one) and the line records the entry (id, sha256, whether it was already stored) instead
/// of an embedding; the same resumable output, retries and shards. Exit 0 when every video is embedded (or refused, with <c>--allow-refused</c>), 1 otherwise; a
/// refused key or a model that changes under the run stops it.
/// </summary>
internal static class EmbedCommand
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--per-clip", "--cpu", "--retry-failed", "--allow-refused", "--library" };

    /// <summary>How often a library job's state is read while the service stores a long video.</summary>
    internal static TimeSpan JobPollInterval { get; set; } = TimeSpan.FromSeconds(1);

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
        bool allowRefused = args.Flag("--allow-refused");
        string? list = args.Optional("--list");
        string? folder = args.Optional("--folder");
        string? shardText = args.Optional("--shard");
        string? outPath = args.Optional("--out");
        int concurrency = args.Int("--concurrency", 1, 1, 256);
        int attempts = args.Int("--retries", 5, 1, 100);
        double timeoutSeconds = args.Double("--timeout", 300, 1, 86400);
        string? apiKey = args.Optional("--api-key") ?? environment("CVRL_API_KEY");
        bool library = args.Flag("--library");
        string? tagsText = args.Optional("--tags");
        args.RejectUnknown();

        if (library && server is null)
        {
            throw new UsageException("--library stores videos in a service's library: give the service with --server URL.");
        }

        if (tagsText is not null && !library)
        {
            throw new UsageException("--tags label library entries: use it with --library.");
        }

        var tags = (tagsText ?? "").Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).ToArray();
        if (tags.Length > 16 || tags.Any(t => t.Length > 64 || !t.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-')))
        {
            throw new UsageException("--tags: at most 16 comma-separated tags, each 1–64 characters of letters, digits, '.', '_', ':' or '-'.");
        }

        if (library && perClip)
        {
            throw new UsageException("--per-clip writes embeddings; with --library the service keeps them (GET /v1/videos/{id}?embeddings=true).");
        }

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

        var run = new Run(items, listing.Count, shard, outPath, retryFailed, allowRefused, concurrency, output, error);
        // Ctrl-C, or SIGTERM from a container runtime or Kubernetes: stop taking videos; lines already written
        // stay. A second signal is not caught: it ends the process at once.
        using var cancel = new CancellationTokenSource();
        int stoppedBy = 0;
        using var interrupt = PosixSignalRegistration.Create(PosixSignal.SIGINT, Stop);
        using var terminate = PosixSignalRegistration.Create(PosixSignal.SIGTERM, Stop);
        try
        {
            return server is not null
                ? await RunServerAsync(new Uri(server), modelArgument, apiKey, attempts, TimeSpan.FromSeconds(timeoutSeconds), perClip, library ? tags : null, run, cancel.Token).ConfigureAwait(false)
                : await RunLocalAsync(modelArgument!, cpu, perClip, run, cancel.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested)
        {
            error.WriteLine("cvrl embed: stopped; the lines written so far are kept (run again to resume with --out)");
            return 128 + stoppedBy; // the shell's convention: 130 after SIGINT, 143 after SIGTERM
        }

        void Stop(PosixSignalContext context)
        {
            if (Interlocked.CompareExchange(ref stoppedBy, context.Signal == PosixSignal.SIGINT ? 2 : 15, 0) == 0)
            {
                context.Cancel = true;
                cancel.Cancel();
            }
        }
    }

    /// <summary>What a run is asked to do, shared by both modes.</summary>
    private sealed record Run(EmbedItem[] Items, int Listed, Shard Shard, string? OutPath, bool RetryFailed, bool AllowRefused, int Concurrency, TextWriter Output, TextWriter Error);

    private enum Ending
    {
        Embedded,

        /// <summary>Refused for good: recorded in --out, not tried again without --retry-failed.</summary>
        Refused,

        /// <summary>Not recorded: the next run tries it again.</summary>
        Unfinished,
    }

    /// <summary>How one video ended, and its line (the embedding, or the error).</summary>
    private readonly record struct Outcome(Ending Ending, JsonObject Line);

    /// <summary>Something true of every video (a refused key, a model changed under the run): the run stops.</summary>
    private sealed class RunStoppedException(string message) : Exception(message);

    private static async Task<int> RunLocalAsync(string modelFolder, bool cpu, bool perClip, Run run, CancellationToken cancellationToken)
    {
        var options = new EncoderSessionOptions { Provider = cpu ? ProviderPreference.Cpu : ProviderPreference.Cuda, WarmUp = false, InferenceTimeout = Timeout.InfiniteTimeSpan };
        EncoderModel model;
        try
        {
            model = await EncoderModel.LoadAsync(modelFolder, options, cancellationToken: cancellationToken).ConfigureAwait(false);
        }
        catch (ModelLoadException e)
        {
            run.Error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }

        await using var owned = model;
        using var reader = new VideoReader();
        var embedder = new VideoEmbedder(reader);
        string modelId = model.Manifest.ModelId;
        return await RunAsync(modelId, run, async (item, ct) =>
        {
            try
            {
                var result = await embedder.EmbedAsync(model, item.Path, cancellationToken: ct).ConfigureAwait(false);
                return new Outcome(Ending.Embedded, JsonSerializer.SerializeToNode(Line(item.Key, result, model.Session.Provider, perClip), JsonLines)!.AsObject());
            }
            catch (CvrlException e)
            {
                // A deadline, a full queue or a model not ready say nothing final about the video.
                var ending = e.Kind is ErrorKind.Timeout or ErrorKind.Overloaded or ErrorKind.NotReady ? Ending.Unfinished : Ending.Refused;
                return new Outcome(ending, Failure(item.Key, modelId, e.Kind.ToString(), e.Message, null));
            }
            catch (Exception e) when (Unexpected(e, ct))
            {
                return Unreadable(item, modelId, e);
            }
        }, cancellationToken).ConfigureAwait(false);
    }

    /// <param name="libraryTags">Not null: store each video in the service's library with these tags instead of embedding it.</param>
    private static async Task<int> RunServerAsync(Uri server, string? modelName, string? apiKey, int attempts, TimeSpan timeout, bool perClip, string[]? libraryTags, Run run, CancellationToken cancellationToken)
    {
        using var client = new ServerEmbedClient(server, apiKey, attempts, timeout, TimeSpan.FromSeconds(0.5), run.Error);
        string name, modelId;
        try
        {
            (name, modelId) = await client.ModelAsync(modelName, cancellationToken).ConfigureAwait(false);
        }
        catch (ServerRefusedException e)
        {
            run.Error.WriteLine($"cvrl: {server}: {e.Message}");
            return 1;
        }

        try
        {
            return await RunAsync(modelId, run, async (item, ct) =>
            {
                try
                {
                    if (libraryTags is not null)
                    {
                        return await StoreAsync(client, item, name, modelId, libraryTags, ct).ConfigureAwait(false);
                    }

                    using var answer = await client.EmbedAsync(item.Path, name, perClip, ct).ConfigureAwait(false);
                    return new Outcome(Ending.Embedded, ServerLine(item.Key, modelId, answer.RootElement, perClip));
                }
                catch (ServerRefusedException e) when (e.IsAboutTheKey)
                {
                    throw new RunStoppedException($"{server} refuses the API key ({e.Status} {e.Message}); give one with --api-key or CVRL_API_KEY.");
                }
                catch (ServerRefusedException e) when (e.Status == 404)
                {
                    throw new RunStoppedException($"{server} no longer has model '{name}' ({e.Message}).");
                }
                catch (ServerRefusedException e)
                {
                    return new Outcome(e.IsAboutTheVideo ? Ending.Refused : Ending.Unfinished, Failure(item.Key, modelId, e.Kind, e.Message, e.Status == 0 ? null : e.Status));
                }
                catch (Exception e) when (Unexpected(e, ct))
                {
                    return Unreadable(item, modelId, e);
                }
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (RunStoppedException e)
        {
            run.Error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }
        finally
        {
            run.Error.WriteLine($"cvrl embed: {client.Attempts} request(s) to {server}");
        }
    }

    /// <summary>
    /// One video into the service's library: stored (or found already stored), following the job when the
    /// service makes one. A job that failed because of the video is a refusal; one that failed otherwise (its
    /// replica stopped) is left for the next run.
    /// </summary>
    private static async Task<Outcome> StoreAsync(ServerEmbedClient client, EmbedItem item, string model, string modelId, string[] tags, CancellationToken cancellationToken)
    {
        string name = item.Key.Length > 200 ? item.Key[^200..] : item.Key;
        using var answer = await client.StoreAsync(item.Path, model, name, tags, cancellationToken).ConfigureAwait(false);
        var entry = answer.RootElement;
        using var job = entry.TryGetProperty("kind", out var kind) && kind.ValueKind == JsonValueKind.String && entry.TryGetProperty("state", out _)
            ? await client.FinishedJobAsync(entry.GetProperty("id").GetString() ?? "", JobPollInterval, cancellationToken).ConfigureAwait(false)
            : null;
        if (job is not null)
        {
            var record = job.RootElement;
            if (record.GetProperty("state").GetString() == "failed")
            {
                var error = record.GetProperty("error");
                string type = error.GetProperty("type").GetString() ?? "";
                bool aboutTheVideo = type.EndsWith(":unsupported-media", StringComparison.Ordinal) || type.EndsWith(":corrupt", StringComparison.Ordinal)
                    || type.EndsWith(":limit-exceeded", StringComparison.Ordinal) || type.EndsWith(":invalid-argument", StringComparison.Ordinal);
                return new Outcome(aboutTheVideo ? Ending.Refused : Ending.Unfinished, Failure(item.Key, modelId, type, error.GetProperty("detail").GetString() ?? "the job failed", null));
            }

            entry = record.GetProperty("result");
        }

        try
        {
            string? answered = entry.GetProperty("modelId").GetString();
            if (answered != modelId)
            {
                throw new RunStoppedException($"The server's model changed during the run (model id {modelId} at the start, {answered} now); run again to store in the new space.");
            }

            return new Outcome(Ending.Embedded, new JsonObject
            {
                ["video"] = item.Key,
                ["library"] = true,
                ["id"] = entry.GetProperty("id").GetString(),
                ["modelId"] = modelId,
                ["sha256"] = entry.GetProperty("sha256").GetString(),
                ["existing"] = entry.GetProperty("existing").GetBoolean(),
                ["name"] = entry.GetProperty("name").GetString(),
                ["clipCount"] = entry.GetProperty("clipCount").GetInt32(),
            });
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException)
        {
            throw new ServerRefusedException(0, "bad-answer", $"The server's answer is not a library entry: {e.Message}");
        }
    }

    /// <summary>Any error of one video but this run's own cancellation and a stop of the whole run.</summary>
    private static bool Unexpected(Exception e, CancellationToken cancellationToken) =>
        e is not RunStoppedException && !(e is OperationCanceledException && cancellationToken.IsCancellationRequested);

    /// <summary>
    /// A path that is not a file (missing, a folder) is refused for good; anything else (no permission, which
    /// a volume's owner or mode can cause for every video; a failing disk; a bug) is left unfinished for the
    /// next run.
    /// </summary>
    private static Outcome Unreadable(EmbedItem item, string modelId, Exception e) =>
        e is FileNotFoundException or DirectoryNotFoundException || Directory.Exists(item.Path)
            ? new Outcome(Ending.Refused, Failure(item.Key, modelId, "not-a-file", e.Message, null))
            : new Outcome(Ending.Unfinished, Failure(item.Key, modelId, e is IOException or UnauthorizedAccessException ? "io" : "error", $"{e.GetType().Name}: {e.Message}", null));

    /// <summary>The loop both modes share: skip what the output already holds, embed the rest, write each line as it ends.</summary>
    private static async Task<int> RunAsync(string modelId, Run run, Func<EmbedItem, CancellationToken, Task<Outcome>> embed, CancellationToken cancellationToken)
    {
        var (items, error) = (run.Items, run.Error);
        using var sink = run.OutPath is null ? EmbedOutput.ToWriter(run.Output) : EmbedOutput.OpenFile(run.OutPath, modelId);
        if (sink.DroppedBytes > 0)
        {
            error.WriteLine($"cvrl embed: dropped a torn last line ({sink.DroppedBytes} bytes) of {run.OutPath}");
        }

        int doneBefore = items.Count(i => sink.Previous.GetValueOrDefault(i.Key));
        int refusedBefore = run.RetryFailed ? 0 : items.Count(i => sink.Previous.TryGetValue(i.Key, out bool ok) && !ok);
        var todo = items.Where(i => !sink.Previous.TryGetValue(i.Key, out bool ok) || (!ok && run.RetryFailed)).ToArray();
        int embedded = 0, refused = 0, unfinished = 0;
        await Parallel.ForEachAsync(todo, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, run.Concurrency), CancellationToken = cancellationToken }, async (item, ct) =>
        {
            var (ending, line) = await embed(item, ct).ConfigureAwait(false);
            if (ending != Ending.Embedded && ct.IsCancellationRequested)
            {
                // A failure while stopping may be the stop itself (Ctrl-C reaches ffmpeg too): never recorded.
                throw new OperationCanceledException(ct);
            }

            // Refusals go to the file, marked so that a rerun skips them, never to stdout; unfinished videos nowhere.
            if (ending == Ending.Refused)
            {
                line[EmbedOutput.RefusedField] = true;
            }

            if (ending == Ending.Embedded || (ending == Ending.Refused && sink.IsFile))
            {
                sink.Write(line);
            }

            switch (ending)
            {
                case Ending.Embedded:
                    Interlocked.Increment(ref embedded);
                    break;
                case Ending.Refused:
                    Interlocked.Increment(ref refused);
                    error.WriteLine($"cvrl: {item.Key}: refused: {line["error"]?["message"]?.GetValue<string>()}");
                    break;
                default:
                    Interlocked.Increment(ref unfinished);
                    error.WriteLine($"cvrl: {item.Key}: not embedded (left for the next run): {line["error"]?["message"]?.GetValue<string>()}");
                    break;
            }
        }).ConfigureAwait(false);

        error.WriteLine($"cvrl embed: shard {run.Shard.Index}/{run.Shard.Count}: {items.Length} of {run.Listed} listed video(s); {doneBefore} done before, {embedded} embedded now, " +
            $"{refused} refused now, {unfinished} unfinished{(refusedBefore > 0 ? $", {refusedBefore} refused before (not retried without --retry-failed)" : "")}");
        bool refusals = refused + refusedBefore > 0;
        return unfinished > 0 || (refusals && !run.AllowRefused) ? 1 : 0;
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

    /// <summary>
    /// The service's answer in the local line's shape (clip times in seconds, timings in milliseconds), checked
    /// first: an answer that is not an embedding of this run's space is not written.
    /// </summary>
    private static JsonObject ServerLine(string video, string modelId, JsonElement answer, bool perClip)
    {
        string? answered;
        try
        {
            answered = answer.GetProperty("modelId").GetString();
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException)
        {
            throw new ServerRefusedException(0, "bad-answer", "The server's answer has no model id.");
        }

        if (answered != modelId)
        {
            // Lines of two spaces in one output cannot be compared; the next run continues in the new space.
            throw new RunStoppedException($"The server's model changed during the run (model id {modelId} at the start, {answered} now); run again to embed in the new space.");
        }

        try
        {
            int dimension = answer.GetProperty("dimension").GetInt32();
            if (dimension <= 0)
            {
                throw new FormatException($"the dimension is {dimension}");
            }

            var line = new JsonObject
            {
                ["video"] = video,
                ["model"] = answer.GetProperty("model").GetString(),
                ["modelId"] = modelId,
                ["dimension"] = dimension,
                ["embedding"] = Vector(answer.GetProperty("embedding"), dimension),
                ["sha256"] = answer.GetProperty("sha256").GetString(),
            };
            if (perClip)
            {
                line["clips"] = new JsonArray(answer.GetProperty("clips").EnumerateArray().Select(c => (JsonNode)new JsonObject
                {
                    ["clip"] = c.GetProperty("clip").GetInt32(),
                    ["startSeconds"] = c.GetProperty("start").GetDouble(),
                    ["endSeconds"] = c.GetProperty("end").GetDouble(),
                    ["embedding"] = Vector(c.GetProperty("embedding"), dimension),
                }).ToArray());
            }

            if (answer.TryGetProperty("timings", out var timings) && timings.ValueKind == JsonValueKind.Object)
            {
                // The service reports seconds; the line keeps the local mode's milliseconds.
                var milliseconds = new JsonObject();
                foreach (var stage in timings.EnumerateObject().Where(t => t.Value.ValueKind == JsonValueKind.Number))
                {
                    milliseconds[stage.Name] = stage.Value.GetDouble() * 1000;
                }

                line["timingsMs"] = milliseconds;
            }

            return line;
        }
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException or FormatException)
        {
            throw new ServerRefusedException(0, "bad-answer", $"The server's answer is not an embedding: {e.Message}");
        }
    }

    /// <summary>A JSON array of <paramref name="dimension"/> numbers (GetDouble refuses anything else, and overflow), copied.</summary>
    private static JsonArray Vector(JsonElement values, int dimension)
    {
        var vector = new JsonArray();
        foreach (var value in values.EnumerateArray())
        {
            vector.Add(value.GetDouble());
        }

        return vector.Count == dimension ? vector : throw new FormatException($"an embedding has {vector.Count} values, not {dimension}");
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
