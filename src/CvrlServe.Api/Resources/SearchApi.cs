using System.Diagnostics;
using System.Text.Json;
using System.Text.Json.Serialization;
using CvrlServe.Api.Hosting;
using CvrlServe.Api.Library;
using CvrlServe.Core.Inference;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Resources;

/// <summary>
/// The JSON body of <c>POST /v1/search</c>: the query is a stored video (<see cref="VideoId"/>, optionally one
/// of its clips) or an embedding with its model id; an uploaded video is sent as multipart/form-data instead.
/// </summary>
/// <param name="Scope"><c>video</c> (default): one hit per video; <c>clip</c>: hits are clips, with start and end.</param>
/// <param name="ExcludeSelf">With a stored video as the query, leave it out of the hits (default true).</param>
public sealed record SearchRequest(
    string? VideoId = null, int? Clip = null, float[]? Embedding = null, string? ModelId = null, int? K = null, string? Scope = null, string? Tag = null, bool? ExcludeSelf = null);

/// <summary>The multipart form of <c>POST /v1/search</c> (query by an uploaded video, embedded with the model first).</summary>
public sealed class SearchForm
{
    public required IFormFile File { get; init; }

    public string? Model { get; init; }

    public int? K { get; init; }

    public string? Scope { get; init; }

    public string? Tag { get; init; }
}

/// <summary>One hit: a stored video (and clip at clip scope) and its cosine similarity to the query.</summary>
public sealed record SearchHitResponse(string VideoId, string Name, int? Clip, double? Start, double? End, float Score);

/// <summary>The hits, best first, and how long the scan took.</summary>
/// <param name="Searched">Rows (videos or clips) in the space's index, before owner and tag filters.</param>
public sealed record SearchResponse(string ModelId, string Scope, int K, IReadOnlyList<SearchHitResponse> Hits, int Searched, double Seconds);

/// <summary>
/// <c>POST /v1/search</c>: exact cosine search over the caller's stored videos or clips in one embedding
/// space (an admin key searches every entry), optionally with a tag.
/// </summary>
public static class SearchApi
{
    public static RouteGroupBuilder MapSearchApi(this RouteGroupBuilder v1)
    {
        ArgumentNullException.ThrowIfNull(v1);
        v1.MapPost("/search", SearchAsync).WithName("Search").WithTags("Library")
            .WithSummary("Find stored videos or clips similar to a stored video, an embedding or an uploaded video")
            .WithDescription("JSON: `videoId` (optionally `clip`) of a stored video, or `embedding` with its `modelId`. multipart/form-data: an uploaded `file` (embedded first with `model`). Then `k` (1–1000, default 10), `scope` (`video` or `clip`), `tag`. Exact: every stored vector of the space is compared (SIMD dot products of L2-normalized vectors = cosine).")
            .Accepts<SearchRequest>("application/json", "multipart/form-data")
            .ProducesProblem(StatusCodes.Status400BadRequest).ProducesProblem(StatusCodes.Status404NotFound).ProducesProblem(StatusCodes.Status415UnsupportedMediaType)
            .DisableAntiforgery();
        return v1;
    }

    private static async Task<Results<Ok<SearchResponse>, ProblemHttpResult>> SearchAsync(
        HttpContext context, VideoLibrary library, UploadReader uploads, ModelRegistryService models, VideoEmbedder embedder, CvrlMetrics metrics, IOptions<CvrlServeOptions> options)
    {
        var cancellationToken = context.RequestAborted;
        string? owner = VideosApi.Scope(context.User);
        float[] query;
        string modelId;
        string? self = null;
        SearchRequest request;
        if (context.Request.HasFormContentType)
        {
            using var upload = await uploads.ReadAsync(context.Request, "file", options.Value.MaxUploadBytes, cancellationToken);
            request = new SearchRequest(K: upload.Number("k", 1, 1000), Scope: upload.Text("scope"), Tag: upload.Text("tag"));
            using var lease = models.Registry.Acquire(upload.Text("model"));
            var embedding = await RequestWork.WithDeadlineAsync(context, options, ct => embedder.EmbedAsync(lease.Model, upload.Path, cancellationToken: ct));
            (query, modelId) = (embedding.Embedding, embedding.ModelId);
        }
        else
        {
            try
            {
                request = await context.Request.ReadFromJsonAsync<SearchRequest>(JsonOptions, cancellationToken) ?? throw new JsonException("empty body");
            }
            catch (Exception e) when (e is JsonException or InvalidOperationException)
            {
                return e is InvalidOperationException
                    ? Problems.UnsupportedMediaType("Send application/json (a stored video id or an embedding) or multipart/form-data (a video file).")
                    : Problems.Invalid("body", "The body is not a search request: " + e.Message.Split('.')[0] + ".");
            }

            if (request.VideoId is { } videoId)
            {
                var entry = await library.Store.GetAsync(videoId, owner, cancellationToken);
                if (entry is null)
                {
                    return VideosApi.NotFound(videoId);
                }

                self = entry.Id;
                modelId = entry.ModelId;
                if (request.Clip is { } clip)
                {
                    var clips = await library.Store.GetClipsAsync(entry.Id, cancellationToken);
                    if (clip < 0 || clip >= clips.Count)
                    {
                        return Problems.Invalid("clip", $"The video has clips 0–{clips.Count - 1}.");
                    }

                    query = clips[clip].Embedding();
                }
                else
                {
                    query = entry.Embedding;
                }
            }
            else if (request.Embedding is { Length: > 0 } embedding && request.ModelId is { Length: > 0 } id)
            {
                if (embedding.Any(v => !float.IsFinite(v)))
                {
                    return Problems.Invalid("embedding", "'embedding' must be finite numbers.");
                }

                (query, modelId) = (embedding, id);
            }
            else
            {
                return Problems.Invalid("videoId", "Give 'videoId' (a stored video), or 'embedding' with its 'modelId'; or upload a video as multipart/form-data.");
            }
        }

        if (request.K is < 1 or > 1000)
        {
            return Problems.Invalid("k", "'k' must be an integer from 1 to 1000.");
        }

        SearchScope? scope = (request.Scope ?? "video").ToLowerInvariant() switch
        {
            "video" => SearchScope.Video,
            "clip" => SearchScope.Clip,
            _ => null,
        };
        if (scope is null)
        {
            return Problems.Invalid("scope", "'scope' is 'video' or 'clip'.");
        }

        if (request.Tag is not null && !LibraryIngest.IsValidTag(request.Tag))
        {
            return Problems.Invalid("tag", "A tag is 1–64 characters of letters, digits, '.', '_', ':' or '-'.");
        }

        int k = request.K ?? 10;
        var clock = Stopwatch.StartNew();
        var index = library.IndexOf(modelId);
        if (index is not null && query.Length != index.Dimension)
        {
            return Problems.Invalid("embedding", $"Embeddings of model id {modelId[..Math.Min(12, modelId.Length)]}… have {index.Dimension} numbers, not {query.Length}.");
        }

        bool excludeSelf = request.ExcludeSelf ?? true;
        string? tag = request.Tag;
        var hits = index?.Search(query, k, scope.Value, e =>
            (owner is null || e.Owner == owner) && (tag is null || e.Tags.Contains(tag)) && !(excludeSelf && e.Id == self)) ?? [];
        metrics.RecordSearch(clock.Elapsed);
        var (videos, clipRows) = index?.Count ?? (0, 0);
        return TypedResults.Ok(new SearchResponse(modelId, scope == SearchScope.Video ? "video" : "clip", k,
            hits.Select(h => new SearchHitResponse(h.Entry.Id, h.Entry.Name, h.Clip, h.Start, h.End, h.Score)).ToArray(),
            scope == SearchScope.Video ? videos : clipRows, clock.Elapsed.TotalSeconds));
    }

    private static readonly JsonSerializerOptions JsonOptions = new(JsonSerializerDefaults.Web) { UnmappedMemberHandling = JsonUnmappedMemberHandling.Skip };
}
