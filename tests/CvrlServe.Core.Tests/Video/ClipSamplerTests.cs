using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class ClipSamplerTests
{
    private static readonly ClipSpec Pretrain = new(16, 2);

    [Fact]
    public void EvaluationOffsets_TenClips_AreIntLinspaceToLengthMinusTs()
    {
        // int(np.linspace(0, 300 - 32*2, 10)) = [0, 26, 52, 78, 104, 131, 157, 183, 209, 236]
        int[] offsets = ClipSampler.EvaluationOffsets(300, new ClipSpec(32, 2), 10);
        Assert.Equal([0, 26, 52, 78, 104, 131, 157, 183, 209, 236], offsets);
    }

    [Fact]
    public void EvaluationOffsets_ShortVideo_AllStartAtZero()
    {
        Assert.All(ClipSampler.EvaluationOffsets(40, new ClipSpec(32, 2), 10), o => Assert.Equal(0, o));
    }

    [Fact]
    public void Indices_PastTheEnd_LoopByTiling()
    {
        Assert.Equal([6, 8, 0, 2, 4, 6], ClipSampler.Indices(6, new ClipSpec(6, 2), 10));
    }

    [Fact]
    public void TrainingOffset_LongVideo_StaysWithinLengthMinusSpan()
    {
        var random = new Random(1);
        var seen = Enumerable.Range(0, 5000).Select(_ => ClipSampler.TrainingOffset(100, Pretrain, random)).ToArray();
        Assert.Equal(0, seen.Min());
        Assert.Equal(100 - 30 - 1, seen.Max());
    }

    [Fact]
    public void SampleInterval_MatchesEachDensityMean()
    {
        // Means on [0, T]: decreasing T/3, uniform T/2, increasing 2T/3 (integer bisection floors by ~0.5).
        const int T = 200;
        foreach (var (distribution, mean) in new[] { (IntervalDistribution.LinearDecreasing, T / 3.0), (IntervalDistribution.Uniform, T / 2.0), (IntervalDistribution.Increasing, 2 * T / 3.0) })
        {
            var random = new Random(7);
            double observed = Enumerable.Range(0, 40_000).Average(_ => ClipSampler.SampleInterval(T, distribution, random));
            Assert.InRange(observed, mean - 2.0, mean + 1.0);
        }
    }

    [Fact]
    public void SampleInterval_LinearDecreasing_HistogramFollowsTwoTimesOneMinusX()
    {
        const int T = 100;
        var random = new Random(3);
        var counts = new int[4];
        const int draws = 80_000;
        for (int i = 0; i < draws; i++)
        {
            counts[ClipSampler.SampleInterval(T, IntervalDistribution.LinearDecreasing, random) * 4 / T]++;
        }

        // Mass of each quarter under 2(1 − x): 7/16, 5/16, 3/16, 1/16.
        double[] expected = [7 / 16.0, 5 / 16.0, 3 / 16.0, 1 / 16.0];
        for (int q = 0; q < 4; q++)
        {
            Assert.InRange(counts[q] / (double)draws, expected[q] - 0.015, expected[q] + 0.015);
        }
    }

    [Fact]
    public void PretrainingStarts_LongVideo_EquivalentToTwoIndependentUniformStarts()
    {
        // cvrl-method.md §4: triangular Δ then uniform start makes (start1, start2) uniform on the square.
        const int L = 130;
        int tMax = L - 30;
        var random = new Random(11);
        var starts = Enumerable.Range(0, 60_000).Select(_ => ClipSampler.PretrainingStarts(L, Pretrain, IntervalDistribution.LinearDecreasing, random)).ToArray();
        Assert.All(starts, s => Assert.InRange(Math.Max(s.First, s.Second), 0, tMax - 1));
        double meanFirst = starts.Average(s => s.First);
        double meanGap = starts.Average(s => Math.Abs(s.First - s.Second));
        Assert.InRange(meanFirst, (tMax - 1) / 2.0 - 1.0, (tMax - 1) / 2.0 + 1.0);
        Assert.InRange(meanGap, tMax / 3.0 - 1.5, tMax / 3.0 + 1.0); // E|U1 − U2| = T/3
        Assert.InRange(starts.Count(s => s.First > s.Second) / (double)starts.Length, 0.48, 0.52);
    }

    [Fact]
    public void PretrainingStarts_VideoShorterThanClip_IndependentUniformOverLength()
    {
        var random = new Random(5);
        var starts = Enumerable.Range(0, 20_000).Select(_ => ClipSampler.PretrainingStarts(20, Pretrain, IntervalDistribution.LinearDecreasing, random)).ToArray();
        Assert.Equal(0, starts.Min(s => s.First));
        Assert.Equal(19, starts.Max(s => s.Second));
        Assert.InRange(starts.Average(s => Math.Abs(s.First - s.Second)), 20 / 3.0 - 0.5, 20 / 3.0 + 0.5);
    }

    [Fact]
    public void PretrainingStarts_Zero_BothClipsTheSameFramesAtAUniformStart()
    {
        var random = new Random(6);
        var starts = Enumerable.Range(0, 20_000).Select(_ => ClipSampler.PretrainingStarts(130, Pretrain, IntervalDistribution.Zero, random)).ToArray();
        Assert.All(starts, s => Assert.Equal(s.First, s.Second));
        Assert.Equal((0, 99), (starts.Min(s => s.First), starts.Max(s => s.First)));
        Assert.InRange(starts.Average(s => s.First), 49.5 - 1, 49.5 + 1);

        // One-frame clips (SimCLR on frames): any frame of the video.
        var frames = Enumerable.Range(0, 5_000).Select(_ => ClipSampler.PretrainingStarts(40, new ClipSpec(1, 1), IntervalDistribution.Zero, random)).ToArray();
        Assert.Equal((0, 39), (frames.Min(s => s.First), frames.Max(s => s.Second)));
    }

    [Fact]
    public void PretrainingPair_SameSeed_SamePlan()
    {
        var grid = new FrameGrid(25, 250, TimeSpan.Zero);
        var a = SamplingPlan.PretrainingPair(grid, Pretrain, IntervalDistribution.LinearDecreasing, new Random(42));
        var b = SamplingPlan.PretrainingPair(grid, Pretrain, IntervalDistribution.LinearDecreasing, new Random(42));
        Assert.Equal(a.Clips[0].Frames, b.Clips[0].Frames);
        Assert.Equal(a.Clips[1].Frames, b.Clips[1].Frames);
        Assert.Equal(16, a.Clips[0].Frames.Count);
    }

    [Fact]
    public void DistinctFrames_OverlappingClips_EachFrameOnceAscending()
    {
        var plan = new SamplingPlan(new FrameGrid(25, 20, TimeSpan.Zero), [new ClipPlan([4, 6, 8]), new ClipPlan([8, 10, 0])]);
        Assert.Equal([0, 4, 6, 8, 10], plan.DistinctFrames());
    }
}
