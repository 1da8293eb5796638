using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Tests.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Probes;

[Collection(SharedVideos.Name)]
public sealed class ProbeFeaturesTests(TestVideos videos) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-features-").FullName;
    private readonly VideoReader _reader = new();

    public void Dispose()
    {
        _reader.Dispose();
        Directory.Delete(_folder, recursive: true);
    }

    /// <summary>tiny-seed1's encoder.onnx under another manifest: same EncoderSha256, another view.</summary>
    private string Variant(string name, Func<EncoderManifest, EncoderManifest> change)
    {
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, name);
        var manifest = change(EncoderManifest.Load(model)) with { Name = name };
        File.WriteAllText(Path.Combine(model, EncoderManifest.FileName), manifest.ToJson());
        return model;
    }

    private static async Task<T> WithModel<T>(string folder, Func<EncoderModel, Task<T>> use)
    {
        await using var model = await EncoderModel.LoadAsync(folder, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, WarmUp = false });
        return await use(model);
    }

    private static double Distance(float[][] a, float[][] b) =>
        a.Length != b.Length ? double.PositiveInfinity : a.Zip(b).Max(p => p.First.Zip(p.Second).Max(v => Math.Abs(v.First - v.Second)));

    [Fact]
    public async Task CachedFeatures_SameOnnxUnderAnotherViewOrNormalization_NeverServedFromTheOthersCache()
    {
        string video = videos.Path("long-index-ish.mp4");
        string original = Variant("original", m => m);
        string wider = Variant("wider", m => m with { View = m.View with { ShortSide = 64 } });
        string shifted = Variant("shifted", m => m with { Values = m.Values with { Mean = [0.5f, 0.5f, 0.5f] } });
        string cache = Path.Combine(_folder, "cache");
        var cached = new ProbeFeatures(new VideoEmbedder(_reader), cache);
        var fresh = new ProbeFeatures(new VideoEmbedder(_reader), cacheFolder: null);

        // Fill the cache from the original view, then ask for the others: each must be what its own view gives.
        var (originalTraining, originalTest) = await WithModel(original, async m => (await cached.TrainingAsync(m, video, clips: 2, seed: 3), await cached.TestAsync(m, video)));
        foreach (string variant in new[] { wider, shifted })
        {
            await WithModel(variant, async m =>
            {
                var (training, test) = (await cached.TrainingAsync(m, video, 2, 3), await cached.TestAsync(m, video));
                var (trainingFresh, testFresh) = (await fresh.TrainingAsync(m, video, 2, 3), await fresh.TestAsync(m, video));
                Assert.True(Distance(originalTraining, trainingFresh) > 1e-3 && Distance(originalTest, testFresh) > 1e-3, "the variant must see something else");
                Assert.True(Distance(trainingFresh, training) < 1e-5, $"{variant}: training features came from another view's cache");
                Assert.True(Distance(testFresh, test) < 1e-5, $"{variant}: test features came from another view's cache");
                return 0;
            });
        }

        Assert.Equal(6, Directory.GetFiles(cache, "*.features").Length); // 3 spaces × (training, test)

        // Another seed or clip count is another training view; the same request is served from the cache.
        await WithModel(original, async m => (await cached.TrainingAsync(m, video, 2, 4), await cached.TrainingAsync(m, video, 3, 3), await cached.TrainingAsync(m, video, 2, 3)));
        Assert.Equal(8, Directory.GetFiles(cache, "*.features").Length);
    }
}
