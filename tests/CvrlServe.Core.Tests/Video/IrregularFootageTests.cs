using System.Diagnostics;
using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// Irregular videos (<see cref="IrregularVideos"/>) through probe, decode and embedding. Every expected
/// frame comes from the file's own timestamps and pixels as ffprobe and a plain ffmpeg decode give them,
/// never from the code under test.
/// </summary>
[Collection(SharedIrregularVideos.Name)]
public sealed class IrregularFootageTests(IrregularVideos videos, ITestOutputHelper output) : IDisposable
{
    private readonly VideoReader _reader = new();

    public static TheoryData<string> All => new(IrregularVideos.Names);

    /// <summary>The constant-rate ones: slot k of the native grid is frame k.</summary>
    public static TheoryData<string> ConstantRate => new(IrregularVideos.Names.Where(n => n != "vfr-gap.mp4"));

    public static TheoryData<string> LongIndex => new(IrregularVideos.Names.Where(n => n.StartsWith("long-", StringComparison.Ordinal)));

    public void Dispose() => _reader.Dispose();

    [Fact]
    public void Fixtures_EachHasTheIrregularityItClaims()
    {
        foreach (string name in IrregularVideos.Names)
        {
            output.WriteLine($"{name}: {videos.Facts(name)}");
        }

        foreach (string name in IrregularVideos.Names)
        {
            var facts = videos.Facts(name);
            // Every frame carries its own index, in presentation order: the pixels are a ground truth.
            Assert.Equal(Enumerable.Range(0, facts.Frames), facts.ContentIndices);
        }

        foreach (string name in new[] { "xvid-26.avi", "xvid-28.avi" })
        {
            var facts = videos.Facts(name);
            Assert.Equal(("avi", "mpeg4"), (facts.Format, facts.Codec));
            Assert.Contains('B', facts.PictTypes);
            Assert.Equal("N/A", facts.FirstFramePts); // AVI packets carry no pts
            Assert.Equal(0.04, FfTools.Number(facts.FirstFrameBestEffort), 6); // from dts: one frame late
            Assert.Equal(name == "xvid-26.avi" ? 26 : 28, facts.Frames);
        }

        var theora = videos.Facts("theora.ogv");
        Assert.Equal(("ogg", "theora", "0/0"), (theora.Format, theora.Codec, theora.AvgFrameRate));

        var gap = videos.Facts("vfr-gap.mp4");
        Assert.Equal(IrregularVideos.GapFrames, gap.Frames);
        Assert.Equal(Enumerable.Range(0, IrregularVideos.GapFrames).Select(n => IrregularVideos.GapPtsMs(n) / 1000.0),
            gap.FrameTimes.Select(t => Math.Round(t, 3)));

        var ts = videos.Facts("bframes-mpeg2.ts");
        Assert.Equal(("mpegts", "mpeg2video"), (ts.Format, ts.Codec));
        Assert.Contains('B', ts.PictTypes);

        foreach (string name in IrregularVideos.Names.Where(n => n.StartsWith("long-", StringComparison.Ordinal)))
        {
            var facts = videos.Facts(name);
            Assert.Equal(IrregularVideos.LongFrames, facts.Frames);
            Assert.Contains('B', facts.PictTypes);
            Assert.True(facts.FrameTimes[^1] - facts.FrameTimes[0] > 3 * 2.0, $"{name} is not longer than a few seek gaps");
        }
    }

    [Theory]
    [MemberData(nameof(All))]
    public async Task EmbedAsync_IrregularVideo_FiniteUnitEmbedding(string name)
    {
        await using var encoder = await TinyEncoder.LoadAsync();
        var clock = Stopwatch.StartNew();
        var embedding = await encoder.EmbedAsync(_reader, videos.Path(name));
        output.WriteLine($"{name}: embedded in {clock.ElapsedMilliseconds} ms");
        TinyEncoder.AssertUsable(embedding);
    }

    [Theory]
    [MemberData(nameof(ConstantRate))]
    public async Task Grid_ConstantRate_OneSlotPerRealFrameAtTheRealRate(string name)
    {
        var facts = videos.Facts(name);
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        var grid = media.Grid();
        output.WriteLine($"{name}: grid rate {grid.Rate}, count {grid.Count}, start {grid.StartTime}; ffprobe: {facts}");

        Assert.Equal(IrregularVideos.Fps, grid.Rate, 3);
        Assert.Equal(facts.Frames, grid.Count);
    }

    [Theory]
    [MemberData(nameof(ConstantRate))]
    public async Task DecodeAsync_EvaluationPlan_ExactlyTheAskedFrames(string name)
    {
        var facts = videos.Facts(name);
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 3);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        AssertFrames(name, facts, plan, decoded);
    }

    [Theory]
    [MemberData(nameof(ConstantRate))]
    public async Task DecodeAsync_TheLastFourFrames_AreTheRealLastFour(string name)
    {
        var facts = videos.Facts(name);
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        int n = facts.Frames;
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan([n - 4, n - 3, n - 2, n - 1])]);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        AssertFrames(name, facts, plan, decoded);
    }

    [Theory]
    [MemberData(nameof(LongIndex))]
    public async Task DecodeAsync_ClipsFarApart_SeekingGivesExactlyTheFramesOfReadingThrough(string name)
    {
        var facts = videos.Facts(name);
        using var throughReader = new VideoReader(new VideoReaderOptions { SeekGapSeconds = 1e6 }); // never seeks
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        var grid = media.Grid();
        // Runs 2.9 s or more apart (the default seek gap is 2 s), arithmetic and not, the last at the very end.
        SamplingPlan[] plans =
        [
            SamplingPlan.Evaluation(grid, new ClipSpec(4, 2), 5),
            new SamplingPlan(grid,
            [
                new ClipPlan([3, 5, 7, 9]),
                new ClipPlan([77, 78, 80, 83]),
                new ClipPlan([151, 153, 155, 157]),
                new ClipPlan([226, 229, 233, 237]),
                new ClipPlan([246, 247, 248, 249]),
            ]),
        ];

        foreach (var plan in plans)
        {
            var seeking = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
            var through = await throughReader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
            output.WriteLine($"{name}: seeking {seeking.Stats}, reading through {through.Stats}");

            AssertFrames($"{name} (reading through)", facts, plan, through);
            AssertFrames($"{name} (seeking)", facts, plan, seeking);
            Assert.Equal(Indices(through, IndexKind.TwoLevel), Indices(seeking, IndexKind.TwoLevel));
        }
    }

    [Theory]
    [MemberData(nameof(LongIndex))]
    public async Task DecodeAsync_ClipsFarApart_TheSeekItselfReturnsEveryFrame(string name)
    {
        // The read-from-start fallback hides a seek that returned too little; it costs a second decode.
        var media = await _reader.GetMediaInfoAsync(videos.Path(name));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 5);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
        Assert.False(decoded.Stats.UsedFallback, $"{name}: {decoded.Stats}");
    }

    [Fact]
    public async Task DecodeAsync_VfrGap_SlotInsideTheGapHoldsTheLastFrameBeforeIt()
    {
        var media = await _reader.GetMediaInfoAsync(videos.Path("vfr-gap.mp4"));
        var grid = media.Grid(targetFps: IrregularVideos.Fps);
        // 40 ms slots. Frame 9 is shown from 0.36 s until frame 10 at 0.88 s: slots 10–21 lie in the gap.
        int[] slots = [8, 9, 10, 15, 21, 22, 23, 36, 37, 38, 40];
        var plan = new SamplingPlan(grid, [new ClipPlan(slots)]);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        // From the timestamps written: the last frame whose pts is at or before the slot's middle.
        int[] expected = slots.Select(k => Enumerable.Range(0, IrregularVideos.GapFrames)
            .Last(n => IrregularVideos.GapPtsMs(n) <= (k + 0.5) * 40)).ToArray();
        Assert.Equal([8, 9, 9, 9, 9, 10, 11, 23, 23, 24, 24], expected);
        Assert.Equal(expected, Indices(decoded, IndexKind.OneLevel));
    }

    [Fact]
    public async Task Grid_VfrGapAtItsTail_ReachesTheLastFrame()
    {
        var facts = videos.Facts("vfr-gap.mp4");
        var media = await _reader.GetMediaInfoAsync(videos.Path("vfr-gap.mp4"));
        var grid = media.Grid(targetFps: IrregularVideos.Fps);
        output.WriteLine($"grid count {grid.Count}; media duration {media.Duration}; ffprobe: {facts}");

        // The last frame (26) is shown from 1.76 s: slot 44 of a 25 fps grid. The grid must reach it.
        int lastSlot = IrregularVideos.GapPtsMs(IrregularVideos.GapFrames - 1) / 40;
        Assert.True(grid.Count > lastSlot, $"grid of {grid.Count} slots stops before the last frame's slot {lastSlot}");
        var decoded = await _reader.DecodeAsync(media, new SamplingPlan(grid, [new ClipPlan([lastSlot])]), FrameGeometry.FullFrame);
        Assert.Equal([IrregularVideos.GapFrames - 1], Indices(decoded, IndexKind.OneLevel));
    }

    private static int[] Indices(DecodedVideo decoded, IndexKind kind) =>
        decoded.Views.SelectMany(v => Enumerable.Range(0, v.Frames.Count).Select(t => IrregularVideos.IndexOf(v.Frame(t), v.Width, v.Height, kind))).ToArray();

    private static void AssertFrames(string name, FileFacts facts, SamplingPlan plan, DecodedVideo decoded)
    {
        var kind = IrregularVideos.KindOf(name.Split(' ')[0]);
        int[] expected = plan.Clips.SelectMany(c => c.Frames).Select(k => facts.ContentIndices[facts.FrameOnScreen(k, IrregularVideos.Fps)]).ToArray();
        int[] actual = Indices(decoded, kind);
        Assert.True(expected.SequenceEqual(actual),
            $"{name}: slots [{string.Join(' ', plan.Clips.SelectMany(c => c.Frames))}] should show frames [{string.Join(' ', expected)}] but show [{string.Join(' ', actual)}]");
    }
}
