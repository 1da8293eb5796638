using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Inference;

[Collection(SharedVideos.Name)]
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "Disposed in IAsyncLifetime.DisposeAsync: the registry disposes asynchronously.")]
public sealed class VideoEmbedderTests : IAsyncLifetime
{
    private readonly TestVideos _videos;
    private readonly VideoReader _reader = new();
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-embed-").FullName;
    private readonly ModelRegistry _registry;
    private EncoderModel.Lease _lease = null!;

    public VideoEmbedderTests(TestVideos videos)
    {
        _videos = videos;
        TinyModels.CopyInto(_models, TinyModels.Seed1, "tiny");
        _registry = new ModelRegistry(_models, new EncoderSessionOptions());
    }

    public async Task InitializeAsync()
    {
        await _registry.StartAsync();
        _lease = _registry.Acquire();
    }

    public async Task DisposeAsync()
    {
        _lease.Dispose();
        await _registry.DisposeAsync();
        _reader.Dispose();
        Directory.Delete(_models, recursive: true);
    }

    [Fact]
    public async Task EmbedAsync_RealVideo_UnitVectorsPerClipAndVideoWithTheEncodersIdentity()
    {
        var model = _lease.Model;
        var result = await new VideoEmbedder(_reader).EmbedAsync(model, _videos.Path("moving-320x240-20s.mp4"));

        Assert.Equal(("tiny", 64), (result.Model, result.Dimension));
        Assert.Equal(model.Manifest.ModelId, result.ModelId);
        Assert.Equal(1.0, Norm(result.Embedding), 4);
        Assert.Equal(2, result.Clips.Count);
        Assert.All(result.Clips, c => Assert.Equal(1.0, Norm(c.Embedding), 4));
        Assert.True(result.Clips[1].Start > result.Clips[0].End, "evaluation clips spread over the video");
        // 4 frames at stride 2 span frames i..i+6; the clip ends when frame i+6 stops showing.
        Assert.Equal(TimeSpan.FromSeconds(7 / 25.0), result.Clips[0].End - result.Clips[0].Start);
        Assert.True(result.Timings.Decode > TimeSpan.Zero && result.Timings.Inference > TimeSpan.Zero);
    }

    [Fact]
    public async Task EmbedAsync_SameVideoTwice_SameEmbedding()
    {
        var embedder = new VideoEmbedder(_reader);
        var a = await embedder.EmbedAsync(_lease.Model, _videos.Path("index.mp4"));
        var b = await embedder.EmbedAsync(_lease.Model, _videos.Path("index.mp4"));
        Assert.Equal(a.Embedding, b.Embedding);
    }

    [Fact]
    public async Task EmbedAsync_ManyVideosConcurrently_AllMatchTheirSequentialEmbedding()
    {
        var embedder = new VideoEmbedder(_reader);
        string[] names = ["index.mp4", "index.webm", "index.mkv", "solid.mp4", "odd-321x241.mp4", "rotated90.mp4"];
        var sequential = new List<float[]>();
        foreach (string name in names)
        {
            sequential.Add((await embedder.EmbedAsync(_lease.Model, _videos.Path(name))).Embedding);
        }

        var concurrent = await Task.WhenAll(names.Concat(names).Select(n => embedder.EmbedAsync(_lease.Model, _videos.Path(n))));
        for (int i = 0; i < concurrent.Length; i++)
        {
            float diff = sequential[i % names.Length].Zip(concurrent[i].Embedding, (x, y) => Math.Abs(x - y)).Max();
            Assert.True(diff <= 1e-5f, $"{names[i % names.Length]}: {diff}");
        }
    }

    [Fact]
    public async Task EmbedAsync_NotAVideo_TheVideoErrorSurfaces()
    {
        await Assert.ThrowsAsync<UnsupportedMediaException>(() => new VideoEmbedder(_reader).EmbedAsync(_lease.Model, _videos.Path("text.mp4")));
    }

    private static double Norm(float[] v) => Math.Sqrt(v.Sum(x => (double)x * x));
}
