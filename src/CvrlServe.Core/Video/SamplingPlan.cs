namespace CvrlServe.Core.Video;

/// <summary>One clip to decode: its frame indices on the grid, in order (they may wrap when the video loops).</summary>
public sealed record ClipPlan(IReadOnlyList<int> Frames);

/// <summary>All clips to decode from one video, on one frame grid. Decoding reads each distinct frame once.</summary>
public sealed record SamplingPlan(FrameGrid Grid, IReadOnlyList<ClipPlan> Clips)
{
    /// <summary>K clips at the evaluation offsets (the manifest's view spec; the paper tests with K = 10).</summary>
    public static SamplingPlan Evaluation(FrameGrid grid, ClipSpec clip, int clips)
    {
        ArgumentNullException.ThrowIfNull(grid);
        return new SamplingPlan(grid, ClipSampler.EvaluationOffsets(grid.Count, clip, clips)
            .Select(offset => new ClipPlan(ClipSampler.Indices(offset, clip, grid.Count)))
            .ToArray());
    }

    /// <summary>One clip at a uniform random offset (supervised training and probe features).</summary>
    public static SamplingPlan Training(FrameGrid grid, ClipSpec clip, Random random)
    {
        ArgumentNullException.ThrowIfNull(grid);
        int offset = ClipSampler.TrainingOffset(grid.Count, clip, random);
        return new SamplingPlan(grid, [new ClipPlan(ClipSampler.Indices(offset, clip, grid.Count))]);
    }

    /// <summary>The two clips of a CVRL pretraining pair.</summary>
    public static SamplingPlan PretrainingPair(FrameGrid grid, ClipSpec clip, IntervalDistribution distribution, Random random)
    {
        ArgumentNullException.ThrowIfNull(grid);
        var (first, second) = ClipSampler.PretrainingStarts(grid.Count, clip, distribution, random);
        return new SamplingPlan(grid,
        [
            new ClipPlan(ClipSampler.Indices(first, clip, grid.Count)),
            new ClipPlan(ClipSampler.Indices(second, clip, grid.Count)),
        ]);
    }

    /// <summary>Every frame index the plan reads, each once, ascending.</summary>
    public int[] DistinctFrames() => Clips.SelectMany(c => c.Frames).Distinct().Order().ToArray();
}
