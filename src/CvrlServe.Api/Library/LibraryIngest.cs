using System.Globalization;
using System.Text;
using System.Text.Json;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Library;

/// <summary>
/// Turns an uploaded file into a library entry: the model's canonical clip plan (the manifest's evaluation
/// clips and crops, as <c>/v1/embeddings</c> embeds), every view's embedding kept so that classification
/// from the store averages exactly the views <c>/v1/classify</c> would. An owner's second upload of the same
/// content for the same model is answered from the store without decoding.
/// </summary>
public sealed class LibraryIngest(VideoLibrary library, VideoEmbedder embedder)
{
    public VideoReader Reader => embedder.Reader;

    /// <summary>The entry for <paramref name="upload"/>, stored now unless the owner already has it.</summary>
    public async Task<(VideoEntry Entry, bool Created)> IngestAsync(IngestRequest upload, EncoderModel model, MediaInfo? media, Func<double, string, Task>? progress, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(upload);
        ArgumentNullException.ThrowIfNull(model);
        var manifest = model.Manifest;
        if (await library.Store.FindAsync(upload.Owner, upload.Sha256, manifest.ModelId, cancellationToken) is { } existing)
        {
            return (existing, false);
        }

        await Report(progress, 0.05, "reading the video's streams");
        media ??= await embedder.Reader.GetMediaInfoAsync(upload.Path, cancellationToken: cancellationToken);
        var plan = SamplingPlan.Evaluation(media.Grid(manifest.View.TargetFps), manifest.Clip(), manifest.View.Clips);
        await Report(progress, 0.1, $"decoding and embedding {plan.Clips.Count} clips");
        var views = await embedder.EmbedViewsAsync(model, media, plan, manifest.Geometry(), cancellationToken: cancellationToken);
        int crops = views.Embeddings.Length / plan.Clips.Count;
        var clips = new StoredClip[plan.Clips.Count];
        for (int c = 0; c < clips.Length; c++)
        {
            var first = views.Video.Views[c * crops];
            clips[c] = new StoredClip(c, first.Start.TotalSeconds, first.End.TotalSeconds, views.Embeddings.Skip(c * crops).Take(crops).ToArray());
        }

        await Report(progress, 0.9, "storing the embeddings");
        string clipPlan = JsonSerializer.Serialize(new { view = manifest.View, clips = clips.Length, crops }, JsonSerializerOptions.Web);
        return await library.AddAsync(new NewVideo(upload.Owner, upload.Sha256, manifest.ModelId, model.Name, upload.Name, upload.Tags, upload.Bytes,
            media.Duration.TotalSeconds, clipPlan, VideoEmbedder.Mean(views.Embeddings), clips), cancellationToken);
    }

    private static Task Report(Func<double, string, Task>? progress, double value, string message) => progress?.Invoke(value, message) ?? Task.CompletedTask;

    /// <summary>
    /// A display name from whatever the client sent: its last path segment, without control or formatting
    /// characters (no bidi overrides, no zero-width tricks), trimmed, at most 200 characters; "video" when
    /// nothing is left.
    /// </summary>
    public static string SanitizeName(string? raw)
    {
        string last = (raw ?? "").Split('/', '\\').Last();
        var kept = new StringBuilder(Math.Min(last.Length, 256));
        var elements = StringInfo.GetTextElementEnumerator(last);
        while (elements.MoveNext() && kept.Length < 200)
        {
            string element = elements.GetTextElement();
            var category = CharUnicodeInfo.GetUnicodeCategory(element, 0);
            if (category is UnicodeCategory.Control or UnicodeCategory.Format or UnicodeCategory.Surrogate or UnicodeCategory.PrivateUse or UnicodeCategory.OtherNotAssigned
                || category is UnicodeCategory.LineSeparator or UnicodeCategory.ParagraphSeparator)
            {
                continue;
            }

            if (kept.Length + element.Length <= 200)
            {
                kept.Append(element);
            }
            else
            {
                break;
            }
        }

        string name = kept.ToString().Trim();
        return name.Length == 0 || name is "." or ".." ? "video" : name;
    }

    /// <summary>The tags of a comma-separated list: each 1–64 characters of <c>[A-Za-z0-9._:-]</c>, at most 16, duplicates dropped.</summary>
    public static IReadOnlyList<string> ParseTags(string? text)
    {
        if (string.IsNullOrWhiteSpace(text))
        {
            return [];
        }

        var tags = text.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).Distinct(StringComparer.Ordinal).ToArray();
        if (tags.Length > 16)
        {
            throw new InvalidRequestException("At most 16 tags.");
        }

        foreach (string tag in tags)
        {
            if (!IsValidTag(tag))
            {
                throw new InvalidRequestException($"Tag '{(tag.Length > 64 ? tag[..64] + "…" : tag)}' is not 1–64 characters of letters, digits, '.', '_', ':' or '-'.");
            }
        }

        return tags;
    }

    public static bool IsValidTag(string? tag) => tag is { Length: >= 1 and <= 64 } && tag.All(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '_' or ':' or '-');
}

/// <summary>What to store: the file on the server, its hash and size, whose it is, and how to label it.</summary>
public sealed record IngestRequest(string Path, string Sha256, long Bytes, string Owner, string Name, IReadOnlyList<string> Tags);
