using CvrlServe.Core.Probes;

namespace CvrlServe.Api.Timeline;

/// <summary>
/// A stretch of the video where consecutive clips share their top label.
/// </summary>
/// <param name="Label">The top label of every clip in the segment.</param>
/// <param name="Start">Seconds from the video's first frame where the segment begins.</param>
/// <param name="End">Seconds from the video's first frame where the segment ends; never before <see cref="Start"/>.</param>
/// <param name="Confidence">Mean over the segment's clips of the probability of <see cref="Label"/>.</param>
/// <param name="FirstClip">The <see cref="ClipScores.Clip"/> of the segment's first clip (in order of start).</param>
/// <param name="LastClip">The <see cref="ClipScores.Clip"/> of the segment's last clip (in order of start).</param>
public sealed record TimelineSegment(string Label, double Start, double End, double Confidence, int FirstClip, int LastClip);

/// <summary>
/// Turns per-clip scores into a timeline: clips in order of start, consecutive clips with the same top
/// label merged into one segment. A pure function of its inputs.
/// </summary>
public static class TimelineBuilder
{
    /// <summary>
    /// The segments of <paramref name="clips"/>, in order of time. Guarantees, for any valid input:
    /// <list type="bullet">
    /// <item>Clips are taken in order of <see cref="ClipScores.Start"/> (then end, then clip number); a clip's
    /// top label is its most probable class, ties going to the lowest class index.</item>
    /// <item>Each run of consecutive clips with the same top label is one segment, even across a gap between
    /// them; <see cref="TimelineSegment.Confidence"/> is the mean of their top-label probabilities.</item>
    /// <item>A segment spans from its first clip's start to the latest end of the clips so far (for CVRL's
    /// equal-length evaluation clips, its last clip's end), except where that overlaps the next segment's
    /// start: then both meet at the midpoint between that end and the next segment's first start.</item>
    /// <item>A gap between two segments (the next starts after every earlier clip has ended) is kept.</item>
    /// <item>Segments never overlap, never have negative length, and are in ascending order of start.</item>
    /// </list>
    /// No clips give no segments. Throws <see cref="ArgumentNullException"/> for a null argument, and
    /// <see cref="ArgumentException"/> when <paramref name="classes"/> is empty, a clip is null, a clip's
    /// probabilities do not match the classes in number or are not finite, or a clip's times are negative
    /// or end before they start.
    /// </summary>
    public static IReadOnlyList<TimelineSegment> Segments(IReadOnlyList<ClipScores> clips, IReadOnlyList<string> classes)
    {
        ArgumentNullException.ThrowIfNull(clips);
        ArgumentNullException.ThrowIfNull(classes);
        if (classes.Count == 0)
        {
            throw new ArgumentException("A timeline needs at least one class.", nameof(classes));
        }

        foreach (var clip in clips)
        {
            Validate(clip, classes.Count);
        }

        var ordered = clips.OrderBy(c => c.Start).ThenBy(c => c.End).ThenBy(c => c.Clip).ToArray();
        var runs = new List<Run>();
        foreach (var clip in ordered)
        {
            int top = TopClass(clip.Probabilities);
            if (runs.Count == 0 || runs[^1].Label != top)
            {
                runs.Add(new Run(top, clip));
            }

            runs[^1].Add(clip);
        }

        var segments = new TimelineSegment[runs.Count];
        double reach = 0; // the latest end of every clip before the current run
        double start = runs.Count > 0 ? runs[0].Start : 0;
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            reach = i == 0 ? run.Reach : Math.Max(reach, run.Reach);
            double end = reach;
            double nextStart = start;
            if (i + 1 < runs.Count)
            {
                double following = runs[i + 1].Start;
                // Overlap: both segments meet halfway between this one's reach and the next one's first start.
                // The midpoint is never before this segment's start (starts and reaches only grow), so the
                // order holds; a gap (or clips that just touch) keeps both edges as they are.
                end = following < reach ? (reach + following) / 2 : reach;
                nextStart = following < reach ? end : following;
            }

            segments[i] = new TimelineSegment(classes[run.Label], start, Math.Max(start, end), run.Confidence, run.FirstClip, run.LastClip);
            start = nextStart;
        }

        return segments;
    }

    /// <summary>The index of the largest value; ties go to the lowest index.</summary>
    internal static int TopClass(float[] probabilities)
    {
        int top = 0;
        for (int k = 1; k < probabilities.Length; k++)
        {
            if (probabilities[k] > probabilities[top])
            {
                top = k;
            }
        }

        return top;
    }

    private static void Validate(ClipScores? clip, int classes)
    {
        if (clip is null)
        {
            throw new ArgumentException("A clip is null.", nameof(clip));
        }

        if (clip.Probabilities is null || clip.Probabilities.Length != classes)
        {
            throw new ArgumentException(
                $"Clip {clip.Clip} has {clip.Probabilities?.Length ?? 0} probabilities for {classes} classes.", nameof(clip));
        }

        if (clip.Probabilities.Any(p => !float.IsFinite(p)))
        {
            throw new ArgumentException($"Clip {clip.Clip} has a probability that is not finite.", nameof(clip));
        }

        if (clip.Start < TimeSpan.Zero || clip.End < clip.Start)
        {
            throw new ArgumentException($"Clip {clip.Clip} spans {clip.Start} to {clip.End}: times must be non-negative and in order.", nameof(clip));
        }
    }

    /// <summary>Consecutive clips with one top label, accumulated in order of start.</summary>
    private sealed class Run(int label, ClipScores first)
    {
        private double _sum;
        private int _count;

        public int Label { get; } = label;

        public double Start { get; } = first.Start.TotalSeconds;

        public double Reach { get; private set; }

        public int FirstClip { get; } = first.Clip;

        public int LastClip { get; private set; }

        public double Confidence => _sum / _count;

        public void Add(ClipScores clip)
        {
            _sum += clip.Probabilities[Label];
            _count++;
            Reach = Math.Max(Reach, clip.End.TotalSeconds);
            LastClip = clip.Clip;
        }
    }
}
