using CvrlServe.Api.Hosting;
using CvrlServe.Core.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Resources;

/// <summary>The multipart form of <c>POST /v1/embeddings</c> (documentation of the parts; the body is streamed, not bound).</summary>
public sealed class EmbeddingForm
{
    /// <summary>The video (mp4/mov, mkv/webm, avi, flv, mpeg-ts/ps, asf, ogg, gif).</summary>
    public required IFormFile File { get; init; }

    /// <summary>The model's name; the default model when absent.</summary>
    public string? Model { get; init; }

    /// <summary>How many clips to sample (1–64), spread over the video; the model's own number when absent.</summary>
    public int? Clips { get; init; }

    /// <summary>Also return each clip's embedding with its start and end (default false).</summary>
    public bool? PerClip { get; init; }
}

/// <summary>Seconds spent in each stage.</summary>
public sealed record TimingsResponse(double Upload, double Probe, double Decode, double Queue, double Inference, double Total);

/// <summary>One clip's embedding and where the clip lies in the video (seconds).</summary>
public sealed record ClipEmbeddingResponse(int Clip, double Start, double End, float[] Embedding);

/// <summary>A video's embedding.</summary>
/// <param name="ModelId">The embedding space: compare or classify only embeddings with the same model id.</param>
/// <param name="Embedding">L2-normalized: the mean of every view's normalized embedding, normalized again.</param>
/// <param name="Sha256">SHA-256 of the uploaded bytes.</param>
public sealed record EmbeddingResponse(
    string Model, string ModelId, int Dimension, float[] Embedding, IReadOnlyList<ClipEmbeddingResponse>? Clips, string Sha256, long Bytes, TimingsResponse Timings);

/// <summary><c>POST /v1/embeddings</c>.</summary>
public static class EmbeddingsApi
{
    public static RouteGroupBuilder MapEmbeddingsApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/embeddings", EmbedAsync).WithName("Embed").WithTags("Embeddings")
            .WithSummary("Embed a video")
            .WithDescription("Upload a video as multipart/form-data (part `file`). Returns its L2-normalized embedding, the model id of the embedding space, the upload's SHA-256, optionally each clip's embedding with its start and end, and the time spent per stage.")
            .Accepts<EmbeddingForm>("multipart/form-data")
            .WithUploadProblems()
            .DisableAntiforgery();
        return v1;
    }

    /// <summary>The error responses every upload endpoint documents.</summary>
    public static RouteHandlerBuilder WithUploadProblems(this RouteHandlerBuilder endpoint)
    {
        ArgumentNullException.ThrowIfNull(endpoint);
        foreach (int status in new[] { 400, 401, 403, 404, 413, 415, 422, 429, 503, 504 })
        {
            endpoint.ProducesProblem(status);
        }

        return endpoint;
    }

    private static async Task<Results<Ok<EmbeddingResponse>, ProblemHttpResult>> EmbedAsync(
        HttpContext context, UploadReader uploads, ModelRegistryService models, VideoEmbedder embedder, CvrlMetrics metrics, RequestLog log, IOptions<CvrlServeOptions> options)
    {
        using var inFlight = metrics.InFlight();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        using var upload = await uploads.ReadAsync(context.Request, "file", options.Value.MaxUploadBytes, context.RequestAborted);
        var uploadTime = clock.Elapsed;
        string? modelName = upload.Text("model");
        int? clips = upload.Number("clips", 1, EncoderManifest.MaxClips);
        bool perClip = upload.Flag("perClip") ?? false;
        using var lease = models.Registry.Acquire(modelName);
        var embedding = await RequestWork.WithDeadlineAsync(context, options, ct => embedder.EmbedAsync(lease.Model, upload.Path, cancellationToken: ct, clips: clips));
        metrics.Record(embedding.Timings, embedding.Clips.Count * lease.Model.Manifest.View.CropsPerClip);
        log.Served(context, "embed", embedding.Model, embedding.ModelId, upload.Sha256, embedding.Timings);
        var t = embedding.Timings;
        return TypedResults.Ok(new EmbeddingResponse(
            embedding.Model, embedding.ModelId, embedding.Dimension, embedding.Embedding,
            perClip ? embedding.Clips.Select(c => new ClipEmbeddingResponse(c.Clip, c.Start.TotalSeconds, c.End.TotalSeconds, c.Embedding)).ToArray() : null,
            upload.Sha256, upload.Length,
            new TimingsResponse(uploadTime.TotalSeconds, t.Probe.TotalSeconds, t.Decode.TotalSeconds, t.Queue.TotalSeconds, t.Inference.TotalSeconds, clock.Elapsed.TotalSeconds)));
    }
}
