using CvrlServe.Api.Timeline;
using CvrlServe.Core.Probes;

namespace CvrlServe.Api.Tests.Timeline;

public sealed class TimelineBuilderTests
{
    private static readonly string[] Classes = ["a", "b", "c"];

    // Probabilities whose top label is a, b or c (distinct top values, so the means below are easy to check).
    private static readonly float[] A7 = [0.7f, 0.2f, 0.1f];
    private static readonly float[] A5 = [0.5f, 0.3f, 0.2f];
    private static readonly float[] B8 = [0.1f, 0.8f, 0.1f];
    private static readonly float[] B6 = [0.3f, 0.6f, 0.1f];
    private static readonly float[] C6 = [0.2f, 0.2f, 0.6f];

    [Fact]
    public void Segments_ConsecutiveSameLabel_Merge()
    {
        var segments = TimelineBuilder.Segments([Clip(0, 0, 1, A7), Clip(1, 1, 2, A5), Clip(2, 2, 3, B8)], Classes);

        Assert.Equal(2, segments.Count);
        // Clips that just touch keep their edges: a spans [0, 2], b spans [2, 3].
        AssertSegment(segments[0], "a", 0, 2, (0.7 + 0.5) / 2, 0, 1);
        AssertSegment(segments[1], "b", 2, 3, 0.8, 2, 2);
    }

    [Fact]
    public void Segments_OverlappingClips_MeetAtMidpoint()
    {
        // 2 s clips starting every second (CVRL's linspace offsets overlap like this).
        var segments = TimelineBuilder.Segments(
            [Clip(0, 0, 2, A7), Clip(1, 1, 3, A5), Clip(2, 2, 4, B8), Clip(3, 3, 5, B6)], Classes);

        // a's last clip ends at 3, b's first starts at 2: the boundary is (3 + 2) / 2 = 2.5.
        Assert.Equal(2, segments.Count);
        AssertSegment(segments[0], "a", 0, 2.5, (0.7 + 0.5) / 2, 0, 1);
        AssertSegment(segments[1], "b", 2.5, 5, (0.8 + 0.6) / 2, 2, 3);
    }

    [Fact]
    public void Segments_ShortSegmentBetweenOverlaps_StaysInOrder()
    {
        var segments = TimelineBuilder.Segments([Clip(0, 0, 2, A7), Clip(1, 1, 3, B8), Clip(2, 2, 4, A5)], Classes);

        // Boundaries: (2 + 1) / 2 = 1.5 between a and b; (3 + 2) / 2 = 2.5 between b and a.
        Assert.Equal(3, segments.Count);
        AssertSegment(segments[0], "a", 0, 1.5, 0.7, 0, 0);
        AssertSegment(segments[1], "b", 1.5, 2.5, 0.8, 1, 1);
        AssertSegment(segments[2], "a", 2.5, 4, 0.5, 2, 2);
    }

    [Fact]
    public void Segments_GapBetweenLabels_IsKept()
    {
        var segments = TimelineBuilder.Segments([Clip(0, 0, 1, A7), Clip(1, 3, 4, B8)], Classes);

        Assert.Equal(2, segments.Count);
        AssertSegment(segments[0], "a", 0, 1, 0.7, 0, 0);
        AssertSegment(segments[1], "b", 3, 4, 0.8, 1, 1);
    }

    [Fact]
    public void Segments_GapBetweenSameLabel_IsInsideTheSegment()
    {
        var segments = TimelineBuilder.Segments([Clip(0, 0, 1, A7), Clip(1, 2, 3, A5), Clip(2, 5, 6, C6)], Classes);

        Assert.Equal(2, segments.Count);
        AssertSegment(segments[0], "a", 0, 3, (0.7 + 0.5) / 2, 0, 1);
        AssertSegment(segments[1], "c", 5, 6, 0.6, 2, 2);
    }

    [Fact]
    public void Segments_TiedTopLabel_LowestClassIndexWins()
    {
        float[] abTie = [0.4f, 0.4f, 0.2f];
        float[] bcTie = [0.1f, 0.45f, 0.45f];
        float[] allTie = [1f / 3, 1f / 3, 1f / 3];

        var segments = TimelineBuilder.Segments([Clip(0, 0, 1, abTie), Clip(1, 1, 2, bcTie), Clip(2, 2, 3, B8), Clip(3, 3, 4, allTie)], Classes);

        // a (tie a/b), then b (tie b/c) merged with b, then a (three-way tie).
        Assert.Equal(3, segments.Count);
        AssertSegment(segments[0], "a", 0, 1, 0.4, 0, 0);
        AssertSegment(segments[1], "b", 1, 3, (0.45 + 0.8) / 2, 1, 2);
        AssertSegment(segments[2], "a", 3, 4, 1.0 / 3, 3, 3);
    }

    [Fact]
    public void Segments_SingleClip_OneSegmentOverIt()
    {
        var segments = TimelineBuilder.Segments([Clip(7, 0.5, 2.5, C6)], Classes);

        AssertSegment(Assert.Single(segments), "c", 0.5, 2.5, 0.6, 7, 7);
    }

    [Fact]
    public void Segments_AllSameLabel_OneSegmentOverEverything()
    {
        var segments = TimelineBuilder.Segments(
            [Clip(0, 0, 2, B8), Clip(1, 1, 3, B6), Clip(2, 2, 4, B8), Clip(3, 3, 5, B6)], Classes);

        AssertSegment(Assert.Single(segments), "b", 0, 5, (0.8 + 0.6 + 0.8 + 0.6) / 4, 0, 3);
    }

    [Fact]
    public void Segments_UnsortedInput_SortedByStart()
    {
        var segments = TimelineBuilder.Segments([Clip(2, 4, 6, B8), Clip(0, 0, 2, A7), Clip(1, 2, 4, A5)], Classes);

        Assert.Equal(2, segments.Count);
        AssertSegment(segments[0], "a", 0, 4, (0.7 + 0.5) / 2, 0, 1);
        AssertSegment(segments[1], "b", 4, 6, 0.8, 2, 2);
    }

    [Fact]
    public void Segments_IdenticalClipsWithDifferentLabels_SplitInHalf()
    {
        // A video shorter than a clip: every clip covers it all. Same start and end: order by clip number.
        var segments = TimelineBuilder.Segments([Clip(1, 0, 1, B8), Clip(0, 0, 1, A7)], Classes);

        Assert.Equal(2, segments.Count);
        AssertSegment(segments[0], "a", 0, 0.5, 0.7, 0, 0);
        AssertSegment(segments[1], "b", 0.5, 1, 0.8, 1, 1);
    }

    [Fact]
    public void Segments_NoClips_NoSegments() => Assert.Empty(TimelineBuilder.Segments([], Classes));

    [Fact]
    public void Segments_RandomClips_NeverOverlapAndStayInOrder()
    {
        var random = new Random(1234);
        for (int trial = 0; trial < 200; trial++)
        {
            var clips = Enumerable.Range(0, random.Next(1, 12)).Select(n =>
            {
                double start = random.NextDouble() * 10;
                var p = new[] { random.NextSingle(), random.NextSingle(), random.NextSingle() };
                return Clip(n, start, start + random.NextDouble() * 4, p);
            }).ToArray();

            var segments = TimelineBuilder.Segments(clips, Classes);

            Assert.InRange(segments.Count, 1, clips.Length);
            Assert.Equal(clips.Min(c => c.Start.TotalSeconds), segments[0].Start, 9);
            for (int i = 0; i < segments.Count; i++)
            {
                Assert.True(segments[i].End >= segments[i].Start, $"trial {trial}: segment {i} ends before it starts");
                Assert.True(i == 0 || segments[i].Start >= segments[i - 1].End, $"trial {trial}: segment {i} overlaps the one before");
                Assert.True(i == 0 || segments[i].Label != segments[i - 1].Label, $"trial {trial}: segments {i - 1} and {i} share a label");
            }
        }
    }

    [Fact]
    public void Segments_ProbabilitiesDoNotMatchClasses_Throws() =>
        Assert.Throws<ArgumentException>(() => TimelineBuilder.Segments([Clip(0, 0, 1, [0.5f, 0.5f])], Classes));

    [Fact]
    public void Segments_ClipEndsBeforeItStarts_Throws() =>
        Assert.Throws<ArgumentException>(() => TimelineBuilder.Segments([Clip(0, 2, 1, A7)], Classes));

    [Fact]
    public void Segments_ProbabilityNotFinite_Throws() =>
        Assert.Throws<ArgumentException>(() => TimelineBuilder.Segments([Clip(0, 0, 1, [float.NaN, 0.5f, 0.5f])], Classes));

    [Fact]
    public void Segments_NoClasses_Throws() =>
        Assert.Throws<ArgumentException>(() => TimelineBuilder.Segments([Clip(0, 0, 1, A7)], []));

    private static ClipScores Clip(int clip, double start, double end, float[] probabilities) =>
        new(clip, TimeSpan.FromSeconds(start), TimeSpan.FromSeconds(end), probabilities);

    private static void AssertSegment(TimelineSegment segment, string label, double start, double end, double confidence, int firstClip, int lastClip)
    {
        Assert.Equal(label, segment.Label);
        Assert.Equal(start, segment.Start, 9);
        Assert.Equal(end, segment.End, 9);
        // Probabilities are float32: compare to float precision.
        Assert.Equal(confidence, segment.Confidence, 6);
        Assert.Equal(firstClip, segment.FirstClip);
        Assert.Equal(lastClip, segment.LastClip);
    }
}
