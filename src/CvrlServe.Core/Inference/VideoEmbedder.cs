using System.Diagnostics;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Inference;

/// <summary>Time spent in each stage of one video's embedding.</summary>
public sealed record StageTimings(TimeSpan Probe, TimeSpan Decode, TimeSpan Queue, TimeSpan Inference, TimeSpan Total);

/// <summary>One clip's embedding (its crops averaged and L2-normalized) and where the clip lies in the video.</summary>
public sealed record ClipEmbedding(int Clip, TimeSpan Start, TimeSpan End, float[] Embedding);

/// <summary>
/// A video's embedding: every view L2-normalized, averaged, normalized again. <see cref="ModelId"/>
/// (<see cref="EncoderManifest.ModelId"/>) names the embedding space: vectors with different ids must not be
/// compared, even when <see cref="Model"/> (the folder's name) is the same.
/// </summary>
public sealed record VideoEmbedding(string Model, string ModelId, int Dimension, float[] Embedding, IReadOnlyList<ClipEmbedding> Clips, StageTimings Timings);

/// <summary>The views of one decode and their L2-normalized embeddings, with stage times.</summary>
public sealed record EmbeddedViews(DecodedVideo Video, float[][] Embeddings, TimeSpan Decode, TimeSpan Queued, TimeSpan Inference);

/// <summary>Embeds videos with a model: views per its manifest through Core.Video, inference through its micro-batcher.</summary>
public sealed class VideoEmbedder(VideoReader reader)
{
    public VideoReader Reader => reader;

    /// <summary>
    /// The video's embedding in <paramref name="model"/>'s space: the manifest's evaluation clips (or
    /// <paramref name="clips"/> of them, spread the same way), every crop, averaged. Throws Core's typed errors.
    /// </summary>
    public async Task<VideoEmbedding> EmbedAsync(EncoderModel model, string path, VideoLimits? limits = null, int? clips = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (clips is < 1 or > EncoderManifest.MaxClips)
        {
            throw new InvalidRequestException($"Clips must be 1–{EncoderManifest.MaxClips}.");
        }

        var manifest = model.Manifest;
        var total = Stopwatch.StartNew();
        var media = await reader.GetMediaInfoAsync(path, limits, cancellationToken);
        var probeTime = total.Elapsed;
        var plan = SamplingPlan.Evaluation(media.Grid(manifest.View.TargetFps), manifest.Clip(), clips ?? manifest.View.Clips);
        var views = await EmbedViewsAsync(model, media, plan, manifest.Geometry(), limits, cancellationToken);

        int crops = views.Embeddings.Length / plan.Clips.Count;
        var perClip = new ClipEmbedding[plan.Clips.Count];
        for (int c = 0; c < perClip.Length; c++)
        {
            var first = views.Video.Views[c * crops];
            perClip[c] = new ClipEmbedding(c, first.Start, first.End, Mean(views.Embeddings.Skip(c * crops).Take(crops).ToArray()));
        }

        return new VideoEmbedding(model.Name, manifest.ModelId, manifest.Output.Dimension, Mean(views.Embeddings), perClip,
            new StageTimings(probeTime, views.Decode, views.Queued, views.Inference, total.Elapsed));
    }

    /// <summary>
    /// Decodes <paramref name="plan"/> at <paramref name="geometry"/>, runs every view through the model's
    /// micro-batcher, and returns each view's L2-normalized embedding (clip-major, then crop).
    /// </summary>
    public async Task<EmbeddedViews> EmbedViewsAsync(EncoderModel model, MediaInfo media, SamplingPlan plan, FrameGeometry geometry, VideoLimits? limits = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var clock = Stopwatch.StartNew();
        // Frames, views and their float tensors are reserved before anything is allocated, and held
        // until the encoder has run: the batcher reads the tensors in place.
        using var reservation = await reader.ReserveAsync(reader.EstimateBytes(media, plan, geometry, withFloatTensors: true, limits), cancellationToken);
        var decoded = await reader.DecodeAsync(media, plan, geometry, limits, reservation, cancellationToken);
        var decodeTime = clock.Elapsed;
        var (embeddings, queued, inference) = await EmbedClipsAsync(model, decoded.Views, cancellationToken);
        return new EmbeddedViews(decoded, embeddings, decodeTime, queued, inference);
    }

    /// <summary>
    /// Runs clips prepared by the caller (all of one shape, rgb24) through the model: the manifest's
    /// normalization, the micro-batcher, then L2 normalization, in clip order. The caller holds a memory
    /// reservation covering the clips and their float tensors (4 bytes per value) until this returns.
    /// </summary>
    public static async Task<(float[][] Embeddings, TimeSpan Queued, TimeSpan Inference)> EmbedClipsAsync(EncoderModel model, IReadOnlyList<DecodedClip> clips, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(clips);
        var normalization = model.Manifest.Normalization();
        var tensors = clips.Select(v => ClipTensor.ToArray(v, normalization)).ToArray();
        var first = clips[0];
        var result = await model.Batcher.EmbedAsync(tensors, [3, first.Frames.Count, first.Height, first.Width], cancellationToken);
        foreach (var embedding in result.Embeddings)
        {
            Normalize(embedding);
        }

        return (result.Embeddings, result.Queued, result.Inference);
    }

    /// <summary>The mean of unit vectors, L2-normalized.</summary>
    public static float[] Mean(IReadOnlyList<float[]> vectors)
    {
        ArgumentNullException.ThrowIfNull(vectors);
        var mean = new float[vectors[0].Length];
        foreach (var v in vectors)
        {
            for (int i = 0; i < mean.Length; i++)
            {
                mean[i] += v[i];
            }
        }

        Normalize(mean);
        return mean;
    }

    /// <summary>Scales <paramref name="vector"/> to unit L2 norm in place (a zero vector stays zero).</summary>
    public static void Normalize(float[] vector)
    {
        ArgumentNullException.ThrowIfNull(vector);
        double sum = 0;
        foreach (float x in vector)
        {
            sum += x * (double)x;
        }

        if (sum > 0)
        {
            float scale = (float)(1 / Math.Sqrt(sum));
            for (int i = 0; i < vector.Length; i++)
            {
                vector[i] *= scale;
            }
        }
    }
}
