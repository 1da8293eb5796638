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

    private static ProbeFeatureOptions Options(int clips, int seed) => new() { ClipsPerVideo = clips, Seed = seed };

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
        var (originalTraining, originalTest) = await WithModel(original, async m => (await cached.TrainingAsync(m, video, Options(2, 3)), await cached.TestAsync(m, video)));
        foreach (string variant in new[] { wider, shifted })
        {
            await WithModel(variant, async m =>
            {
                var (training, test) = (await cached.TrainingAsync(m, video, Options(2, 3)), await cached.TestAsync(m, video));
                var (trainingFresh, testFresh) = (await fresh.TrainingAsync(m, video, Options(2, 3)), await fresh.TestAsync(m, video));
                Assert.True(Distance(originalTraining, trainingFresh) > 1e-3 && Distance(originalTest, testFresh) > 1e-3, "the variant must see something else");
                Assert.True(Distance(trainingFresh, training) < 1e-5, $"{variant}: training features came from another view's cache");
                Assert.True(Distance(testFresh, test) < 1e-5, $"{variant}: test features came from another view's cache");
                return 0;
            });
        }

        Assert.Equal(6, Directory.GetFiles(cache, "*.features").Length); // 3 spaces × (training, test)

        // Another seed or clip count is another training view; the same request is served from the cache.
        await WithModel(original, async m => (await cached.TrainingAsync(m, video, Options(2, 4)), await cached.TrainingAsync(m, video, Options(3, 3)), await cached.TrainingAsync(m, video, Options(2, 3))));
        Assert.Equal(8, Directory.GetFiles(cache, "*.features").Length);
    }

    [Fact]
    public async Task TrainingFeatures_Protocol_AreTheUncroppedDecodeCroppedResizedAndFlippedPerClip()
    {
        // tiny-seed1: 4 frames at stride 2, short side 40, crop 32. Rebuild clip k from its pieces.
        string video = videos.Path("long-index-ish.mp4");
        string model = Variant("m", m => m);
        var options = new ProbeFeatureOptions { ClipsPerVideo = 3, Seed = 5, TrainCrop = 24 };
        var features = new ProbeFeatures(new VideoEmbedder(_reader), cacheFolder: null);
        await WithModel(model, async m =>
        {
            var actual = await features.TrainingAsync(m, video, options);
            var media = await _reader.GetMediaInfoAsync(video);
            var grid = media.Grid(null);
            var clip = m.Manifest.Clip();
            var expected = new List<float[]>();
            for (int k = 0; k < 3; k++)
            {
                var random = ProbeFeatures.ClipRandom(Path.GetFullPath(video), k, 5);
                var plan = new SamplingPlan(grid, [new ClipPlan(ClipSampler.Indices(ClipSampler.TrainingOffset(grid.Count, clip, random), clip, grid.Count))]);
                var whole = (await _reader.DecodeAsync(media, plan, new FrameGeometry(40))).Views[0];
                Assert.Equal((53, 40), (whole.Width, whole.Height)); // 64×48 at short side 40, no crop
                var box = RandomResizedCrop.Protocol.Draw(random, whole.Width, whole.Height);
                bool flip = random.NextDouble() < 0.5;
                expected.Add((await VideoEmbedder.EmbedClipsAsync(m, [ClipResize.CropResize(whole, box, 24, 24, flip)])).Embeddings[0]);
            }

            Assert.True(Distance(expected.ToArray(), actual) < 1e-5, "the features are not the protocol's pipeline");
            return 0;
        });
    }

    [Fact]
    public async Task TrainingFeatures_ClipKSameWhateverTheClipCount_FlipCropAugmentAndSingleFrameEachChangeThem_AndAreCachedApart()
    {
        string video = videos.Path("long-index-ish.mp4");
        string model = Variant("m", m => m);
        string cache = Path.Combine(_folder, "cache");
        var cached = new ProbeFeatures(new VideoEmbedder(_reader), cache);
        var fresh = new ProbeFeatures(new VideoEmbedder(_reader), cacheFolder: null);
        int variantCount = 0;
        await WithModel(model, async m =>
        {
            // The draws depend on the video's absolute path (a temporary folder), so a fixed seed may flip no
            // clip: take the first seed whose draws (offset, crop of the 53×40 frame, flip) flip one of the two.
            string fullPath = Path.GetFullPath(video);
            int length = (await _reader.GetMediaInfoAsync(video)).Grid(null).Count;
            var clip = m.Manifest.Clip();
            bool AnyFlip(int seed) => Enumerable.Range(0, 2).Any(k =>
            {
                var random = ProbeFeatures.ClipRandom(fullPath, k, seed);
                ClipSampler.TrainingOffset(length, clip, random);
                RandomResizedCrop.Protocol.Draw(random, 53, 40);
                return random.NextDouble() < 0.5;
            });
            int seed = Enumerable.Range(1, 64).First(AnyFlip);
            var baseline = new ProbeFeatureOptions { ClipsPerVideo = 2, Seed = seed };
            ProbeFeatureOptions[] variants =
            [
                baseline with { ClipsPerVideo = 3 },
                baseline with { Flip = false },
                baseline with { TrainCrop = 24 },
                baseline with { Augment = ProbeAugment.None },
                baseline with { SingleFrame = true },
                baseline with { Seed = seed + 1 },
            ];
            variantCount = variants.Length;
            var first = await cached.TrainingAsync(m, video, baseline);
            Assert.True(Distance(first, await fresh.TrainingAsync(m, video, baseline)) < 1e-6, "features must be deterministic");
            var three = await cached.TrainingAsync(m, video, variants[0]);
            Assert.True(Distance(first, three[..2]) < 1e-6, "clip k must not depend on the clip count");
            foreach (var variant in variants[1..])
            {
                var features = await cached.TrainingAsync(m, video, variant);
                Assert.True(Distance(await fresh.TrainingAsync(m, video, variant), features) < 1e-6, $"{variant}: served from another setting's cache");
                Assert.True(Distance(first, features) > 1e-4, $"{variant} changed nothing");
            }

            return 0;
        });
        Assert.Equal(1 + variantCount, Directory.GetFiles(cache, "*.features").Length);
    }

    [Fact]
    public async Task TestFeatures_PresetViewAndSingleFrame_CachedApart_PresetSpaceIsTheModelExportedWithThatView()
    {
        string video = videos.Path("long-index-ish.mp4");
        string model = Variant("m", m => m);
        var view = EncoderManifest.Load(model).View with { ShortSide = 48, CropMode = CropMode.ThreeAlongLongSide, Clips = 3 };
        string exported = Variant("exported", m => m with { View = view });
        string cache = Path.Combine(_folder, "cache");
        var cached = new ProbeFeatures(new VideoEmbedder(_reader), cache);
        var options = new ProbeFeatureOptions { View = view };
        var (manifestView, presetView, singleFrame) = await WithModel(model, async m =>
        {
            Assert.Equal(EncoderManifest.Load(exported).ModelId, ProbeFeatures.SpaceOf(m.Manifest, view).ModelId);
            return (await cached.TestAsync(m, video), await cached.TestAsync(m, video, options), await cached.TestAsync(m, video, options with { SingleFrame = true }));
        });
        Assert.Equal(2, manifestView.Length);
        Assert.Equal(9, presetView.Length);
        Assert.True(Distance(presetView, singleFrame) > 1e-4);
        Assert.Equal(3, Directory.GetFiles(cache, "*.features").Length);
        // The model exported with the preset's view reads the preset's cached features: the same space.
        var exportedView = await WithModel(exported, m => cached.TestAsync(m, video));
        Assert.Equal(presetView, exportedView);
        Assert.Equal(3, Directory.GetFiles(cache, "*.features").Length);
    }

    [Theory]
    [InlineData(10, 100, 25)] // 16 frames at stride 2 span 31 grid frames: the centre is 15 after the start
    [InlineData(90, 100, 5)] // past the end the clip loops, and so does its centre
    public void PlanClip_SingleFrame_TheCentreFrameRepeated(int offset, int length, int centre)
    {
        var clip = new ClipSpec(16, 2);
        Assert.Equal(Enumerable.Repeat(centre, 16), ProbeFeatures.PlanClip(offset, clip, length, singleFrame: true).Frames);
        Assert.Equal(ClipSampler.Indices(offset, clip, length), ProbeFeatures.PlanClip(offset, clip, length, singleFrame: false).Frames);
    }
}
