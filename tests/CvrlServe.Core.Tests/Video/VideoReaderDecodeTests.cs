using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

[Collection(SharedVideos.Name)]
public sealed class VideoReaderDecodeTests(TestVideos videos) : IDisposable
{
    private readonly VideoReader _reader = new();

    public void Dispose() => _reader.Dispose();

    [Theory]
    [InlineData("index.mp4")]
    [InlineData("index.webm")]
    [InlineData("index.avi")]
    [InlineData("index.mkv")]
    [InlineData("index.mov")]
    [InlineData("index.ts")]
    public async Task DecodeAsync_EvaluationPlan_ReturnsExactlyThePlannedFrames(string name)
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 3);
        var video = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        Assert.Equal(TestVideos.IndexFrames, media.Grid().Count);
        Assert.Equal(3, video.Views.Count);
        foreach (var (view, clip) in video.Views.Zip(plan.Clips))
        {
            Assert.Equal((64, 48), (view.Width, view.Height));
            Assert.Equal(4 * 64 * 48 * 3, view.Rgb.Length);
            Assert.Equal(clip.Frames, FrameIndices(view));
        }
    }

    [Theory]
    [InlineData("0.02")]  // half a frame at 25 fps: (t − start)·R lands on k − 0.5
    [InlineData("0.06")]
    public async Task DecodeAsync_StartHalfAFrameOffTheGrid_EveryFrameOnceInOrder(string offset)
    {
        string path = Path.Combine(videos.Folder, $"index-offset-{offset}.mkv");
        TestVideos.RunFfmpeg($"-i \"{videos.Path("index.mkv")}\" -c copy -output_ts_offset {offset} \"{path}\"");
        var media = await _reader.GetMediaInfoAsync(path);
        Assert.Equal(double.Parse(offset, System.Globalization.CultureInfo.InvariantCulture), media.StartTime.TotalSeconds, 3);
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan(Enumerable.Range(0, TestVideos.IndexFrames).ToArray())]);

        var video = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        Assert.Equal(Enumerable.Range(0, TestVideos.IndexFrames), FrameIndices(video.Views.Single()));
        Assert.Equal((1, false, 0), (video.Stats.Processes, video.Stats.UsedFallback, video.Stats.FilledTailFrames));
    }

    [Fact]
    public async Task DecodeAsync_LoopingAndOverlappingClips_EachFrameRight()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("index.mp4"));
        var grid = media.Grid();
        var plan = new SamplingPlan(grid,
        [
            new ClipPlan(ClipSampler.Indices(24, new ClipSpec(5, 2), grid.Count)), // 24 26 28 0 2
            new ClipPlan(ClipSampler.Indices(2, new ClipSpec(3, 1), grid.Count)),  // 2 3 4
        ]);
        var video = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        Assert.Equal([24, 26, 28, 0, 2], FrameIndices(video.Views[0]));
        Assert.Equal([2, 3, 4], FrameIndices(video.Views[1]));
        Assert.Equal(1, video.Stats.Processes);
        Assert.False(video.Stats.UsedFallback);
    }

    [Fact]
    public async Task DecodeAsync_DistantClips_OneProcessManySeeks()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("long-index-ish.mp4"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 4);
        var video = await _reader.DecodeAsync(media, plan, new FrameGeometry(32));

        Assert.Equal(360, media.FrameCount);
        Assert.Equal(4, video.Views.Count);
        Assert.Equal(1, video.Stats.Processes);
        Assert.All(video.Views, v => Assert.Equal((43, 32), (v.Width, v.Height))); // 64×48 → 42.7 rounds to 43
    }

    [Fact]
    public async Task DecodeAsync_SolidColour_PixelsMatchWhatWasEncoded()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("solid.mp4"));
        var video = await _reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(2, 1), 1), FrameGeometry.FullFrame);
        var frame = video.Views[0].Frame(1);
        for (int p = 0; p < 64 * 48; p += 97)
        {
            Assert.InRange(frame[p * 3], 0xC8 - 4, 0xC8 + 4);
            Assert.InRange(frame[p * 3 + 1], 0x32 - 4, 0x32 + 4);
            Assert.InRange(frame[p * 3 + 2], 0x64 - 4, 0x64 + 4);
        }
    }

    [Fact]
    public async Task DecodeAsync_Rotated90_FramesComeUpright()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("rotated90.mp4"));
        Assert.Equal((48, 64, 90), (media.Width, media.Height, media.Rotation));
        var video = await _reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(1, 1), 1), FrameGeometry.FullFrame);
        var view = video.Views[0];
        Assert.Equal((48, 64), (view.Width, view.Height));

        // Stored: left half white, right half black. Upright after a quarter turn: one half on top,
        // the other below, and each row uniform.
        byte[] frame = view.Frame(0).ToArray();
        byte Grey(int x, int y) => frame[(y * 48 + x) * 3];
        Assert.InRange(Math.Abs(Grey(24, 8) - Grey(24, 56)), 200, 255);
        Assert.InRange(Math.Abs(Grey(4, 8) - Grey(44, 8)), 0, 10);
    }

    [Fact]
    public async Task DecodeAsync_OddSize_ResizeAndThreeCrops()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("odd-321x241.mp4"));
        Assert.Equal((321, 241), (media.Width, media.Height));

        var full = await _reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(2, 1), 1), FrameGeometry.FullFrame);
        Assert.Equal(2 * 321 * 241 * 3, full.Views[0].Rgb.Length);

        var crops = await _reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(2, 1), 2), FrameGeometry.ThreeCrops(64, 64));
        Assert.Equal(6, crops.Views.Count);
        Assert.All(crops.Views, v => Assert.Equal((64, 64, 2 * 64 * 64 * 3), (v.Width, v.Height, v.Rgb.Length)));
        Assert.Equal([0, 1, 2, 0, 1, 2], crops.Views.Select(v => v.Crop));
        Assert.NotEqual(crops.Views[0].Rgb, crops.Views[2].Rgb); // testsrc2 differs left to right
    }

    [Fact]
    public async Task DecodeAsync_SingleFrameVideo_LoopsThatFrame()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("single-frame.mp4"));
        Assert.Equal(1, media.FrameCount);
        var video = await _reader.DecodeAsync(media, SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 2), 2), FrameGeometry.FullFrame);
        Assert.All(video.Views, v => Assert.Equal([0, 0, 0, 0, 0, 0, 0, 0], v.Frames));
        Assert.InRange(video.Views[0].Frame(7)[2], 0xC8 - 4, 0xC8 + 4);
    }

    [Fact]
    public async Task DecodeAsync_ShorterThanOneClip_Tiles()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("short-5.mp4"));
        var plan = SamplingPlan.PretrainingPair(media.Grid(), new ClipSpec(16, 2), IntervalDistribution.LinearDecreasing, new Random(3));
        var video = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
        Assert.Equal(2, video.Views.Count);
        foreach (var (view, clip) in video.Views.Zip(plan.Clips))
        {
            Assert.Equal(16, view.Frames.Count);
            Assert.Equal(clip.Frames, FrameIndices(view));
        }
    }

    [Fact]
    public async Task DecodeAsync_VariableFrameRate_ResampledGridShowsFrameOnScreen()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("vfr.mp4"));
        Assert.True(media.IsVariableFrameRate);

        // Resampled to 10 fps: slot k shows the frame on screen mid-slot, at (k + ½)/10 s. Frames 0–9
        // last 40 ms each (0–0.4 s), frames 10–19 last 100 ms each (0.4–1.4 s).
        var grid = media.Grid(targetFps: 10);
        Assert.InRange(grid.Count, 12, 14);
        var plan = new SamplingPlan(grid, [new ClipPlan([0, 2, 4, 6, 11])]);
        var video = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
        Assert.Equal([1, 6, 10, 12, 17], FrameIndices(video.Views[0]));
    }

    [Fact]
    public async Task DecodeAsync_TruncatedFaststart_IsCorruptWithStderr()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("truncated-faststart.mp4"));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 2);
        var error = await Assert.ThrowsAsync<CorruptVideoException>(() => _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame));
        Assert.Contains("frames", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task DecodeAsync_AudioOnly_Unsupported()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("audio-only.m4a"));
        Assert.False(media.HasVideo);
        var plan = new SamplingPlan(new FrameGrid(25, 10, TimeSpan.Zero), [new ClipPlan([0])]);
        await Assert.ThrowsAsync<UnsupportedMediaException>(() => _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame));
    }

    private static int[] FrameIndices(DecodedClip view) =>
        Enumerable.Range(0, view.Frames.Count).Select(t => TestVideos.FrameIndexOf(view.Frame(t)[(24 * view.Width + 32) * 3])).ToArray();
}
