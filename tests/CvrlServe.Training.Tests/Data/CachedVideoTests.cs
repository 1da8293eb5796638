using CvrlServe.Core.Video;
using CvrlServe.Training.Data;

namespace CvrlServe.Training.Tests.Data;

[Collection(SharedTrainingVideos.Name)]
public sealed class CachedVideoTests(TrainingVideos videos) : IDisposable
{
    private readonly string _cache = Directory.CreateTempSubdirectory("cvrl-cache-").FullName;

    public void Dispose() => Directory.Delete(_cache, recursive: true);

    [Fact]
    public async Task ReadFrames_PretrainingPair_ByteEqualToCoreVideoDecode()
    {
        using var reader = new VideoReader();
        string video = Path.Combine(videos.Unlabeled, "a", "video0.mp4");
        var cached = await CachedVideo.OpenOrBuildAsync(reader, video, _cache, new CacheOptions(ShortSide: 40));

        var media = await reader.GetMediaInfoAsync(video);
        Assert.Equal(media.Grid().Count, cached.Frames);
        var plan = SamplingPlan.PretrainingPair(cached.Grid, new ClipSpec(8, 2), IntervalDistribution.LinearDecreasing, new Random(4));
        var decoded = await reader.DecodeAsync(media, plan with { Grid = media.Grid() }, new FrameGeometry(40));

        for (int c = 0; c < 2; c++)
        {
            Assert.Equal(decoded.Views[c].Rgb, cached.ReadFrames(plan.Clips[c].Frames));
        }

        Assert.Equal((53, 40), (cached.Width, cached.Height));
    }

    [Fact]
    public async Task OpenOrBuildAsync_SecondTime_ReadsTheCacheWithoutDecoding()
    {
        using var reader = new VideoReader();
        string video = Path.Combine(videos.Unlabeled, "b", "video1.mp4");
        var first = await CachedVideo.OpenOrBuildAsync(reader, video, _cache, new CacheOptions(ShortSide: 40, MaxFrames: 10));
        var writeTime = File.GetLastWriteTimeUtc(first.File);
        var second = await CachedVideo.OpenOrBuildAsync(reader, video, _cache, new CacheOptions(ShortSide: 40, MaxFrames: 10));
        Assert.Equal(first.File, second.File);
        Assert.Equal(writeTime, File.GetLastWriteTimeUtc(second.File));
        Assert.Equal(10, second.Frames);
        Assert.Empty(Directory.GetFiles(_cache, "*.tmp"));
    }

    [Fact]
    public async Task OpenOrBuildAsync_DamagedCacheFile_DecodesAgain()
    {
        using var reader = new VideoReader();
        string video = Path.Combine(videos.Unlabeled, "a", "video2.mp4");
        var options = new CacheOptions(ShortSide: 40, MaxFrames: 6);
        var good = await CachedVideo.OpenOrBuildAsync(reader, video, _cache, options);
        byte[] expected = good.ReadFrames([0, 5]);
        string file = CachedVideo.PathFor(video, _cache, options);
        File.WriteAllBytes(file, File.ReadAllBytes(file)[..100]);

        var rebuilt = await CachedVideo.OpenOrBuildAsync(reader, video, _cache, options);
        Assert.Equal(expected, rebuilt.ReadFrames([0, 5]));
    }
}
