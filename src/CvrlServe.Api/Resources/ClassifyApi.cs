using CvrlServe.Api.Hosting;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Resources;

/// <summary>The multipart form of <c>POST /v1/classify</c>.</summary>
public sealed class ClassifyForm
{
    /// <summary>The video.</summary>
    public required IFormFile File { get; init; }

    /// <summary>The probe (linear classifier) to apply.</summary>
    public required string Probe { get; init; }

    /// <summary>The model's name; the default model when absent.</summary>
    public string? Model { get; init; }

    /// <summary>How many labels to return, best first (1–1000, default 5).</summary>
    public int? TopK { get; init; }

    /// <summary>Also return every class's probability, in the probe's class order (default false).</summary>
    public bool? All { get; init; }

    /// <summary>Also return a timeline: each clip's top label, merged into segments of the same label (default false).</summary>
    public bool? Timeline { get; init; }

    /// <summary>With a timeline, a small JPEG keyframe per segment (default true; the service may turn them off).</summary>
    public bool? Thumbnails { get; init; }
}

/// <summary>A class and its probability.</summary>
public sealed record LabelScore(string Label, float Probability);

/// <summary>A video's labels.</summary>
/// <param name="ModelId">The embedding space the probe was trained in.</param>
/// <param name="Labels">The top-K labels, best first; probabilities are averaged over every view of the video.</param>
/// <param name="Classes">Every class's probability in the probe's class order, when asked for.</param>
public sealed record ClassifyResponse(
    string Model, string ModelId, string Probe, IReadOnlyList<LabelScore> Labels, IReadOnlyList<LabelScore>? Classes,
    IReadOnlyList<SegmentResponse>? Timeline, string? Sha256, TimingsResponse? Timings);

/// <summary>A stretch of the video whose clips share a top label (seconds), with the mean top-label probability.</summary>
public sealed record SegmentResponse(string Label, double Start, double End, double Confidence, ThumbnailResponse? Thumbnail);

/// <summary>A small keyframe from the middle of a segment, base64-encoded.</summary>
public sealed record ThumbnailResponse(string MediaType, int Width, int Height, string Data);

/// <summary>The body of <c>POST /v1/classify/embedding</c>.</summary>
/// <param name="ModelId">The model id the embedding came with (from <c>/v1/embeddings</c>); refused if it is not the probe's.</param>
public sealed record ClassifyEmbeddingRequest(string Probe, string ModelId, float[] Embedding, string? Model = null, int? TopK = null, bool? All = null);

/// <summary><c>POST /v1/classify</c> and <c>POST /v1/classify/embedding</c>.</summary>
public static class ClassifyApi
{
    public static RouteGroupBuilder MapClassifyApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/classify", ClassifyAsync).WithName("Classify").WithTags("Classify")
            .WithSummary("Classify a video with a probe")
            .WithDescription("Upload a video as multipart/form-data (part `file`) and name a probe. Returns the top-K labels with probabilities averaged over every view, optionally every class's, and optionally a timeline of segments (clips with the same top label merged) with a keyframe thumbnail each.")
            .Accepts<ClassifyForm>("multipart/form-data")
            .WithUploadProblems()
            .DisableAntiforgery();
        v1.MapPost("/classify/embedding", ClassifyEmbeddingAsync).WithName("ClassifyEmbedding").WithTags("Classify")
            .WithSummary("Classify an embedding you already have")
            .WithDescription("Applies a probe to an embedding returned by /v1/embeddings. Its model id must be the probe's: embeddings of another model or view are refused. One embedding is one view, so probabilities can differ slightly from /v1/classify, which averages over views.")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status503ServiceUnavailable);
        return v1;
    }

    private static async Task<Results<Ok<ClassifyResponse>, ProblemHttpResult>> ClassifyAsync(
        HttpContext context, UploadReader uploads, ModelRegistryService models, ProbeCatalog probes, VideoEmbedder embedder, CvrlMetrics metrics, RequestLog log, IOptions<CvrlServeOptions> options)
    {
        using var inFlight = metrics.InFlight();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var upload = await uploads.ReadAsync(context.Request, "file", options.Value.MaxUploadBytes, context.RequestAborted);
        var uploadTime = clock.Elapsed;
        string probeName = upload.Text("probe") ?? throw new ApiProblemException(Problems.Invalid("probe", "Name the probe to apply ('probe')."));
        int topK = upload.Number("topK", 1, 1000) ?? 5;
        bool all = upload.Flag("all") ?? false;
        bool timeline = upload.Flag("timeline") ?? false;
        bool thumbnails = (upload.Flag("thumbnails") ?? true) && options.Value.ThumbnailSize > 0;
        using var lease = models.Registry.Acquire(upload.Text("model"));
        var probe = await probes.LoadAsync(probeName, lease.Model.Name, lease.Model.Manifest, context.RequestAborted);
        var (scores, segments) = await RequestWork.WithDeadlineAsync(context, options, async ct =>
        {
            var scores = await VideoClassifier.ClassifyAsync(embedder, lease.Model, probe, upload.Path, cancellationToken: ct);
            var segments = timeline ? await Timelines.BuildAsync(embedder.Reader, scores, thumbnails ? options.Value.ThumbnailSize : 0, ct) : null;
            return (scores, segments);
        });
        metrics.Record(scores.Timings, scores.Clips.Count * lease.Model.Manifest.View.CropsPerClip);
        log.Served(context, "classify:" + probeName, lease.Model.Name, scores.ModelId, upload.Sha256, scores.Timings);
        var t = scores.Timings;
        return TypedResults.Ok(Respond(lease.Model.Name, scores.ModelId, probeName, scores.Classes, scores.Probabilities, topK, all, segments, upload.Sha256,
            new TimingsResponse(uploadTime.TotalSeconds, t.Probe.TotalSeconds, t.Decode.TotalSeconds, t.Queue.TotalSeconds, t.Inference.TotalSeconds, clock.Elapsed.TotalSeconds)));
    }

    private static async Task<Results<Ok<ClassifyResponse>, ProblemHttpResult>> ClassifyEmbeddingAsync(
        ClassifyEmbeddingRequest request, ModelRegistryService models, ProbeCatalog probes, CancellationToken cancellationToken)
    {
        if (request is null || string.IsNullOrWhiteSpace(request.Probe))
        {
            return Problems.Invalid("probe", "Name the probe to apply ('probe').");
        }

        if (request.Embedding is not { Length: > 0 } embedding || embedding.Any(v => !float.IsFinite(v)))
        {
            return Problems.Invalid("embedding", "'embedding' must be a non-empty array of finite numbers.");
        }

        if (request.TopK is < 1 or > 1000)
        {
            return Problems.Invalid("topK", "'topK' must be an integer from 1 to 1000.");
        }

        using var lease = models.Registry.Acquire(request.Model);
        var probe = await probes.LoadAsync(request.Probe, lease.Model.Name, lease.Model.Manifest, cancellationToken);
        if (!string.Equals(request.ModelId, probe.Metadata.ModelId, StringComparison.OrdinalIgnoreCase))
        {
            return Problems.Invalid("modelId", $"The embedding's model id {Short(request.ModelId)} is not probe '{request.Probe}''s {Short(probe.Metadata.ModelId)}: it comes from another model or view, and its numbers mean something else there.");
        }

        if (embedding.Length != probe.Probe.Dimension)
        {
            return Problems.Invalid("embedding", $"The probe takes {probe.Probe.Dimension} numbers, not {embedding.Length}.");
        }

        return TypedResults.Ok(Respond(lease.Model.Name, probe.Metadata.ModelId, request.Probe, probe.Probe.Classes, probe.Probe.Predict(embedding),
            request.TopK ?? 5, request.All ?? false, null, null, null));
    }

    private static ClassifyResponse Respond(string model, string modelId, string probe, IReadOnlyList<string> classes, float[] probabilities, int topK, bool all,
        IReadOnlyList<SegmentResponse>? timeline, string? sha256, TimingsResponse? timings)
    {
        var scored = classes.Select((c, i) => new LabelScore(c, probabilities[i])).ToArray();
        var top = scored.Select((s, i) => (s, i)).OrderByDescending(x => x.s.Probability).ThenBy(x => x.i).Take(topK).Select(x => x.s).ToArray();
        return new ClassifyResponse(model, modelId, probe, top, all ? scored : null, timeline, sha256, timings);
    }

    private static string Short(string? id) => id is null ? "(none)" : id.Length > 12 ? id[..12] + "…" : id;
}
