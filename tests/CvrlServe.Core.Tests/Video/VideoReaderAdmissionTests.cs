using CvrlServe.Core.Inference;
using CvrlServe.Core.Tests.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// Decoded memory is reserved before it is allocated, and only what the views use is decoded. Isolated:
/// the tests measure this process's heap, which tests running beside them would disturb.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class VideoReaderAdmissionTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-admission-").FullName;

    public VideoReaderAdmissionTests()
    {
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=320x240:r=25 -t 5 -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{Path("moving.mp4")}\"");
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=64x48:r=25 -frames:v 12 -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{Path("small.mp4")}\"");
    }

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task DecodeAsync_WaitingForMemory_AllocatesNothingUntilAdmitted()
    {
        var media = await new VideoReader().GetMediaInfoAsync(Path("moving.mp4"));
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan(Enumerable.Range(0, 100).ToArray())]);
        long oneRequest = 2L * 100 * 320 * 240 * 3; // ffmpeg's output and the view cut from it
        using var reader = new VideoReader(new VideoReaderOptions { DecodedMemoryBudgetBytes = oneRequest, MaxWaitingDecodes = 8 });
        Assert.Equal(oneRequest, reader.EstimateBytes(media, plan, FrameGeometry.FullFrame, withFloatTensors: false));

        var hold = await reader.ReserveAsync(oneRequest);
        long before = GC.GetTotalMemory(forceFullCollection: true);
        var decodes = Enumerable.Range(0, 6).Select(_ => reader.DecodeAsync(media, plan, FrameGeometry.FullFrame)).ToArray();
        await Poll.UntilAsync(() => reader.MemoryBudget.Waiting == 6, TimeSpan.FromSeconds(20));
        Assert.Equal(6, reader.MemoryBudget.Waiting);
        long waiting = GC.GetTotalMemory(forceFullCollection: true) - before;

        // Six requests wait; none holds its 23 MB frame buffer yet (allocating first would hold 138 MB).
        Assert.InRange(waiting, long.MinValue, 8L << 20);
        hold.Dispose();
        var results = await Task.WhenAll(decodes);
        Assert.All(results, r => Assert.Equal(100, r.Views.Single().Frames.Count));
        Assert.Equal(oneRequest, reader.MemoryBudget.PeakBytes);
    }

    [Fact]
    public async Task DecodeAsync_MoreWaitingThanTheQueue_Overloaded()
    {
        var media = await new VideoReader().GetMediaInfoAsync(Path("small.mp4"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 1), 1);
        using var reader = new VideoReader(new VideoReaderOptions { DecodedMemoryBudgetBytes = 1 << 20, MaxWaitingDecodes = 1 });
        var hold = await reader.ReserveAsync(1 << 20);
        var first = reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
        await Poll.UntilAsync(() => reader.MemoryBudget.Waiting == 1, TimeSpan.FromSeconds(20));
        Assert.Equal(1, reader.MemoryBudget.Waiting);

        await Assert.ThrowsAsync<OverloadedException>(() => reader.DecodeAsync(media, plan, FrameGeometry.FullFrame));
        hold.Dispose();
        Assert.Single((await first).Views);
    }

    [Fact]
    public async Task EmbedAsync_WideVideo_ReservesOnlyTheCroppedViewsAndTheirTensors()
    {
        string wide = Path("wide-1024x16.mp4");
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=1024x16:r=25 -t 2 -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{wide}\"");
        await using var model = await EncoderModel.LoadAsync(TinyModels.Seed1, new EncoderSessionOptions { Provider = ProviderPreference.Cpu });
        using var reader = new VideoReader(new VideoReaderOptions { Limits = new VideoLimits { MaxAspectRatio = 64 } });

        var embedding = await new VideoEmbedder(reader).EmbedAsync(model, wide);

        // tiny-seed1 serves 2 clips × 4 frames (stride 2) of a 32² centre crop at short side 40: 2560×40
        // after the resize, but only the crops are decoded. 50 frames: clips at 0 and 42 → 8 distinct.
        var view = model.Manifest.View;
        long crop = (long)view.CropSize * view.CropSize * 3;
        long frames = 8 * crop;
        long views = view.Clips * view.Frames * crop;
        Assert.Equal(frames + views + 4 * views, reader.MemoryBudget.PeakBytes);
        Assert.Equal(0, reader.MemoryBudget.InUseBytes);
        Assert.All(embedding.Embedding, x => Assert.True(float.IsFinite(x)));
    }

    [Fact]
    public async Task GetMediaInfoAsync_VeryWideVideo_RefusedByTheAspectLimit()
    {
        string wide = Path("wide-4096x16.mp4");
        TestVideos.RunFfmpeg($"-f lavfi -i testsrc2=s=4096x16:r=25 -frames:v 5 -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{wide}\"");
        using var reader = new VideoReader();

        var error = await Assert.ThrowsAsync<LimitExceededException>(() => reader.GetMediaInfoAsync(wide));
        Assert.Equal((Limit.AspectRatio, 256d, "ratio"), (error.Limit, error.Actual, error.Unit));
    }

    private string Path(string name) => System.IO.Path.Combine(_folder, name);

}
