using System.Diagnostics;
using System.Security.Claims;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Library;
using CvrlServe.Api.Timeline;
using CvrlServe.Core;
using CvrlServe.Core.Probes;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Resources;

/// <summary>The multipart form of <c>POST /v1/videos</c>.</summary>
public sealed class VideoForm
{
    /// <summary>The video.</summary>
    public required IFormFile File { get; init; }

    /// <summary>The model's name; the default model when absent.</summary>
    public string? Model { get; init; }

    /// <summary>A display name (the part's file name when absent); sanitized, at most 200 characters.</summary>
    public string? Name { get; init; }

    /// <summary>Comma-separated tags, each 1–64 characters of letters, digits, '.', '_', ':' or '-'; at most 16.</summary>
    public string? Tags { get; init; }

    /// <summary>"true" to store the video in a background job (202) whatever its length.</summary>
    public bool? Async { get; init; }

    /// <summary>An https URL on an allowlisted host, called (signed) when the job ends; makes the upload a job.</summary>
    public string? Webhook { get; init; }
}

/// <summary>A stored clip: where it lies in the video (seconds), and its embedding (its views averaged) when asked for.</summary>
public sealed record StoredClipResponse(int Clip, double Start, double End, float[]? Embedding);

/// <summary>A video in the library.</summary>
/// <param name="Id">Opaque; the same content and model stored again by the same key returns the same id.</param>
/// <param name="Existing">True when the upload was already stored (nothing was decoded).</param>
public sealed record VideoResponse(
    string Id, string Model, string ModelId, string Name, IReadOnlyList<string> Tags, string Sha256, long Bytes, double DurationSeconds,
    DateTimeOffset CreatedUtc, int Dimension, int ClipCount, bool Existing, float[]? Embedding, IReadOnlyList<StoredClipResponse>? Clips);

/// <summary>A page of the library, newest first.</summary>
public sealed record VideoListResponse(IReadOnlyList<VideoResponse> Videos, int Page, int PageSize, long Total, int? NextPage);

/// <summary>A stored video's labels, computed from its stored embeddings.</summary>
/// <param name="Decoded">Always false: nothing was decoded or run through the encoder.</param>
/// <param name="Seconds">Time spent reading the stored embeddings and applying the probe.</param>
public sealed record StoredClassifyResponse(
    string VideoId, string Name, string Model, string ModelId, string Probe, IReadOnlyList<LabelScore> Labels, IReadOnlyList<LabelScore>? Classes,
    IReadOnlyList<SegmentResponse>? Timeline, bool Decoded, double Seconds);

/// <summary>The body of <c>POST /v1/videos/classify</c>: a probe over every stored video (with a tag) of the caller.</summary>
public sealed record BatchClassifyRequest(string Probe, string? Tag = null, string? Model = null, int? TopK = null);

/// <summary>One video's labels in a batch.</summary>
public sealed record BatchClassifyItem(string VideoId, string Name, IReadOnlyList<LabelScore> Labels);

/// <summary>Every matching stored video's labels; videos stored in another embedding space than the probe's are counted, not classified.</summary>
public sealed record BatchClassifyResponse(string Model, string ModelId, string Probe, IReadOnlyList<BatchClassifyItem> Videos, int OtherSpace, bool Decoded, double Seconds);

/// <summary>Building responses from entries (shared with the ingest jobs' results).</summary>
public static class VideoResponses
{
    public static VideoResponse Of(VideoEntry entry, bool existing, IReadOnlyList<StoredClip>? clips, bool withEmbeddings = false)
    {
        ArgumentNullException.ThrowIfNull(entry);
        return new VideoResponse(entry.Id, entry.Model, entry.ModelId, entry.Name, entry.Tags, entry.Sha256, entry.Bytes, entry.DurationSeconds, entry.CreatedUtc,
            entry.Dimension, entry.ClipCount, existing, withEmbeddings ? entry.Embedding : null,
            clips?.Select(c => new StoredClipResponse(c.Clip, c.Start, c.End, withEmbeddings ? c.Embedding() : null)).ToArray());
    }
}

/// <summary>
/// <c>/v1/videos</c>: the video library. Entries belong to the API key that stored them: listing, reading,
/// classifying and searching see only the caller's entries (an admin key sees all), and an entry of another
/// key is answered exactly like a missing one.
/// </summary>
public static class VideosApi
{
    private const int MaxPageSize = 200;

    public static RouteGroupBuilder MapVideosApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/videos", AddAsync).WithName("AddVideo").WithTags("Library")
            .WithSummary("Store a video's embeddings in the library")
            .WithDescription("Upload a video (multipart/form-data, part `file`): its per-view embeddings under the model's clip plan are stored with a name and tags. 201 with the new entry; 200 with the existing one when this key already stored the same content (SHA-256) for the same model (nothing is decoded then). A video longer than Cvrl:Library:JobAboveSeconds, or `async=true`, or a `webhook`, makes a background job: 202 and Location /v1/jobs/{id}, whose result is the entry.")
            .Accepts<VideoForm>("multipart/form-data")
            .Produces<VideoResponse>(StatusCodes.Status201Created)
            .Produces<JobRecord>(StatusCodes.Status202Accepted)
            .WithUploadProblems()
            .DisableAntiforgery();
        v1.MapGet("/videos/{id}", GetAsync).WithName("GetVideo").WithTags("Library")
            .WithSummary("A stored video; with `embeddings=true` its video and per-clip embeddings")
            .ProducesProblem(StatusCodes.Status404NotFound);
        v1.MapGet("/videos", ListAsync).WithName("ListVideos").WithTags("Library")
            .WithSummary("The caller's stored videos, newest first, paged (`page` from 1, `pageSize` up to 200), optionally with a `tag` or in one embedding space (`modelId`)")
            .ProducesProblem(StatusCodes.Status400BadRequest);
        v1.MapDelete("/videos/{id}", DeleteAsync).WithName("DeleteVideo").WithTags("Library")
            .WithSummary("Delete a stored video (admin)")
            .RequireAuthorization(ApiKeyHandler.AdminPolicy)
            .ProducesProblem(StatusCodes.Status404NotFound);
        v1.MapPost("/videos/{id}/classify", ClassifyAsync).WithName("ClassifyStoredVideo").WithTags("Library")
            .WithSummary("Classify a stored video with a probe, without decoding")
            .WithDescription("Applies the probe to every stored view's embedding and averages, as /v1/classify does after decoding: the same labels and probabilities, in milliseconds. The probe must have been trained in the entry's embedding space (409 otherwise: store the video again with the current model). `timeline=true` adds segments (no thumbnails: no frames are kept).")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status409Conflict).ProducesProblem(StatusCodes.Status400BadRequest);
        v1.MapPost("/videos/classify", ClassifyBatchAsync).WithName("ClassifyStoredVideos").WithTags("Library")
            .WithSummary("Classify every stored video of the caller (optionally with a tag) with a probe, without decoding")
            .ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status400BadRequest);
        return v1;
    }

    /// <summary>Whose entries a caller sees: its own, or (null) every one for an admin.</summary>
    internal static string? Scope(ClaimsPrincipal user) => user.IsInRole("admin") ? null : JobsApi.Owner(user);

    private static async Task<Results<Created<VideoResponse>, Ok<VideoResponse>, Accepted<JobRecord>, ProblemHttpResult>> AddAsync(
        HttpContext context, UploadReader uploads, ModelRegistryService models, VideoLibrary library, LibraryIngest ingest, IngestJobs jobs, WebhookSender webhooks,
        CvrlMetrics metrics, IOptions<CvrlServeOptions> options)
    {
        using var inFlight = metrics.InFlight();
        using var upload = await uploads.ReadAsync(context.Request, "file", options.Value.MaxUploadBytes, context.RequestAborted);
        string owner = JobsApi.Owner(context.User);
        var tags = LibraryIngest.ParseTags(upload.Text("tags"));
        string name = LibraryIngest.SanitizeName(upload.Text("name") ?? upload.FileName);
        string? webhook = upload.Text("webhook");
        if (webhook is not null)
        {
            try
            {
                webhooks.Validate(webhook);
            }
            catch (WebhookRefusedException e)
            {
                return Problems.Invalid("webhook", e.Message);
            }
        }

        using var lease = models.Registry.Acquire(upload.Text("model"));
        var model = lease.Model;
        if (await library.Store.FindAsync(owner, upload.Sha256, model.Manifest.ModelId, context.RequestAborted) is { } existing)
        {
            return TypedResults.Ok(VideoResponses.Of(existing, existing: true, null));
        }

        var media = await RequestWork.WithDeadlineAsync(context, options, ct => ingest.Reader.GetMediaInfoAsync(upload.Path, cancellationToken: ct));
        double above = options.Value.Library.JobAboveSeconds;
        if ((upload.Flag("async") ?? false) || webhook is not null || media.Duration.TotalSeconds > above || above == 0)
        {
            var job = await jobs.SubmitAsync(upload.Path, new IngestPayload(upload.Sha256, upload.Length, model.Name, name, tags, webhook), owner, context.RequestAborted);
            return TypedResults.Accepted($"/v1/jobs/{job.Id}", job);
        }

        var (entry, created) = await RequestWork.WithDeadlineAsync(context, options,
            ct => ingest.IngestAsync(new IngestRequest(upload.Path, upload.Sha256, upload.Length, owner, name, tags), model, media, null, ct));
        var response = VideoResponses.Of(entry, !created, null);
        return created ? TypedResults.Created($"/v1/videos/{entry.Id}", response) : TypedResults.Ok(response);
    }

    private static async Task<Results<Ok<VideoResponse>, ProblemHttpResult>> GetAsync(string id, VideoStore store, ClaimsPrincipal user, CancellationToken cancellationToken, bool embeddings = false)
    {
        var entry = await store.GetAsync(id, Scope(user), cancellationToken);
        if (entry is null)
        {
            return NotFound(id);
        }

        return TypedResults.Ok(VideoResponses.Of(entry, existing: true, await store.GetClipsAsync(entry.Id, cancellationToken), embeddings));
    }

    private static async Task<Results<Ok<VideoListResponse>, ProblemHttpResult>> ListAsync(
        VideoStore store, ClaimsPrincipal user, CancellationToken cancellationToken, string? tag = null, string? modelId = null, int page = 1, int pageSize = 50)
    {
        if (page < 1 || page > 1_000_000)
        {
            return Problems.Invalid("page", "'page' counts from 1.");
        }

        if (pageSize is < 1 or > MaxPageSize)
        {
            return Problems.Invalid("pageSize", $"'pageSize' must be 1–{MaxPageSize}.");
        }

        if (tag is not null && !LibraryIngest.IsValidTag(tag))
        {
            return Problems.Invalid("tag", "A tag is 1–64 characters of letters, digits, '.', '_', ':' or '-'.");
        }

        // The space is named by its model id (what the entries were embedded in), so old entries stay listable after a model changes.
        var found = await store.ListAsync(Scope(user), tag, modelId, page, pageSize, cancellationToken);
        bool more = (long)page * pageSize < found.Total;
        return TypedResults.Ok(new VideoListResponse(found.Entries.Select(e => VideoResponses.Of(e, existing: true, null)).ToArray(), page, pageSize, found.Total, more ? page + 1 : null));
    }

    private static async Task<Results<NoContent, ProblemHttpResult>> DeleteAsync(string id, VideoLibrary library, CancellationToken cancellationToken)
    {
        var entry = await library.Store.GetAsync(id, null, cancellationToken);
        return entry is not null && await library.DeleteAsync(entry, cancellationToken) ? TypedResults.NoContent() : NotFound(id);
    }

    private static async Task<Results<Ok<StoredClassifyResponse>, ProblemHttpResult>> ClassifyAsync(
        string id, [FromQuery] string? probe, VideoStore store, ModelRegistryService models, ProbeCatalog probes, ClaimsPrincipal user, CancellationToken cancellationToken,
        int? topK = null, bool all = false, bool timeline = false)
    {
        var clock = Stopwatch.StartNew();
        if (string.IsNullOrWhiteSpace(probe))
        {
            return Problems.Invalid("probe", "Name the probe to apply ('probe').");
        }

        if (topK is < 1 or > 1000)
        {
            return Problems.Invalid("topK", "'topK' must be an integer from 1 to 1000.");
        }

        var entry = await store.GetAsync(id, Scope(user), cancellationToken);
        if (entry is null)
        {
            return NotFound(id);
        }

        using var lease = models.Registry.Acquire(entry.Model);
        var stored = await probes.LoadAsync(probe, lease.Model.Name, lease.Model.Manifest, cancellationToken);
        if (!string.Equals(stored.Metadata.ModelId, entry.ModelId, StringComparison.OrdinalIgnoreCase))
        {
            return OtherSpace(probe, entry);
        }

        var clips = await store.GetClipsAsync(entry.Id, cancellationToken);
        var (probabilities, perClip) = Score(stored, clips);
        var scored = Labels(stored.Probe.Classes, probabilities);
        var segments = timeline
            ? TimelineBuilder.Segments(perClip, stored.Probe.Classes).Select(s => new SegmentResponse(s.Label, s.Start, s.End, s.Confidence, null)).ToArray()
            : null;
        return TypedResults.Ok(new StoredClassifyResponse(entry.Id, entry.Name, lease.Model.Name, entry.ModelId, probe, Top(scored, topK ?? 5), all ? scored : null, segments,
            Decoded: false, clock.Elapsed.TotalSeconds));
    }

    private static async Task<Results<Ok<BatchClassifyResponse>, ProblemHttpResult>> ClassifyBatchAsync(
        BatchClassifyRequest request, VideoStore store, ModelRegistryService models, ProbeCatalog probes, ClaimsPrincipal user, IOptions<CvrlServeOptions> options, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        if (request is null || string.IsNullOrWhiteSpace(request.Probe))
        {
            return Problems.Invalid("probe", "Name the probe to apply ('probe').");
        }

        if (request.TopK is < 1 or > 1000)
        {
            return Problems.Invalid("topK", "'topK' must be an integer from 1 to 1000.");
        }

        if (request.Tag is not null && !LibraryIngest.IsValidTag(request.Tag))
        {
            return Problems.Invalid("tag", "A tag is 1–64 characters of letters, digits, '.', '_', ':' or '-'.");
        }

        using var lease = models.Registry.Acquire(request.Model);
        var stored = await probes.LoadAsync(request.Probe, lease.Model.Name, lease.Model.Manifest, cancellationToken);
        string? scope = Scope(user);
        int max = options.Value.Library.MaxBatchClassify;
        long all = (await store.ListAsync(scope, request.Tag, null, 1, 1, cancellationToken)).Total;
        var inSpace = new List<VideoEntry>();
        for (int page = 1; inSpace.Count < max; page++)
        {
            var found = await store.ListAsync(scope, request.Tag, stored.Metadata.ModelId, page, 500, cancellationToken);
            inSpace.AddRange(found.Entries.Take(max - inSpace.Count));
            if (found.Entries.Count < 500)
            {
                break;
            }
        }

        var items = new List<BatchClassifyItem>(inSpace.Count);
        foreach (var entry in inSpace)
        {
            var (probabilities, _) = Score(stored, await store.GetClipsAsync(entry.Id, cancellationToken));
            items.Add(new BatchClassifyItem(entry.Id, entry.Name, Top(Labels(stored.Probe.Classes, probabilities), request.TopK ?? 1)));
        }

        return TypedResults.Ok(new BatchClassifyResponse(lease.Model.Name, stored.Metadata.ModelId, request.Probe, items, (int)Math.Max(0, all - inSpace.Count), Decoded: false, clock.Elapsed.TotalSeconds));
    }

    /// <summary>Every stored view scored, averaged per clip and over the video: the computation of <see cref="VideoClassifier"/>, without the decode.</summary>
    private static (float[] Video, IReadOnlyList<ClipScores> Clips) Score(StoredProbe probe, IReadOnlyList<StoredClip> clips)
    {
        if (clips.Count == 0)
        {
            throw new InvalidRequestException("The stored video has no clips.");
        }

        var perClip = clips.Select(c => c.Views.Select(probe.Probe.Predict).ToArray()).ToArray();
        var video = ProbeEvaluation.AverageViews(perClip.SelectMany(v => v).ToArray());
        return (video, clips.Select((c, i) => new ClipScores(c.Clip, TimeSpan.FromSeconds(c.Start), TimeSpan.FromSeconds(c.End), ProbeEvaluation.AverageViews(perClip[i]))).ToArray());
    }

    private static LabelScore[] Labels(IReadOnlyList<string> classes, float[] probabilities) => classes.Select((c, i) => new LabelScore(c, probabilities[i])).ToArray();

    private static LabelScore[] Top(LabelScore[] scored, int k) =>
        scored.Select((s, i) => (s, i)).OrderByDescending(x => x.s.Probability).ThenBy(x => x.i).Take(k).Select(x => x.s).ToArray();

    private static ProblemHttpResult OtherSpace(string probe, VideoEntry entry) =>
        Problems.Conflict($"Video '{entry.Id}' was stored in embedding space {entry.ModelId[..Math.Min(12, entry.ModelId.Length)]}…, and probe '{probe}' was trained in another: store the video again with the current model (POST /v1/videos), or use a probe of that space.");

    internal static ProblemHttpResult NotFound(string id) => Problems.NotFound($"No stored video '{(id.Length > 40 ? id[..40] + "…" : id)}'.");
}
