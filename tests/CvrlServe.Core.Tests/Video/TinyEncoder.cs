using CvrlServe.Core.Inference;
using CvrlServe.Core.Tests.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

/// <summary>The committed tiny seed-1 encoder, loaded once for a test class, and the checks every embedding must pass.</summary>
internal sealed class TinyEncoder : IAsyncDisposable
{
    private readonly EncoderModel _model;

    private TinyEncoder(EncoderModel model) => _model = model;

    public static async Task<TinyEncoder> LoadAsync() => new(await EncoderModel.LoadAsync(TinyModels.Seed1, new EncoderSessionOptions()));

    public EncoderModel Model => _model;

    public Task<VideoEmbedding> EmbedAsync(VideoReader reader, string path, VideoLimits? limits = null, CancellationToken cancellationToken = default) =>
        new VideoEmbedder(reader).EmbedAsync(_model, path, limits, cancellationToken: cancellationToken);

    /// <summary>Null when the embedding is usable (the model's dimension, finite, unit L2 norm); else what is wrong.</summary>
    public static string? Problem(VideoEmbedding embedding)
    {
        float[] v = embedding.Embedding;
        if (v.Length != embedding.Dimension || v.Length == 0)
        {
            return $"length {v.Length}, dimension {embedding.Dimension}";
        }

        if (!v.All(float.IsFinite))
        {
            return "not finite";
        }

        double norm = Math.Sqrt(v.Sum(x => x * (double)x));
        return Math.Abs(norm - 1) > 1e-3 ? $"norm {norm}" : null;
    }

    public static void AssertUsable(VideoEmbedding embedding) => Assert.Null(Problem(embedding));

    public ValueTask DisposeAsync() => _model.DisposeAsync();
}
