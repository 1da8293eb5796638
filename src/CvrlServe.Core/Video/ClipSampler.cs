namespace CvrlServe.Core.Video;

/// <summary>How many frames a clip holds and how far apart they are, in grid frames.</summary>
public sealed record ClipSpec(int Frames, int Stride)
{
    /// <summary>Grid frames one clip spans from its first to its last frame, inclusive: (T−1)·s + 1.</summary>
    public int Span => (Frames - 1) * Stride + 1;

    public void Validate()
    {
        if (Frames < 1 || Stride < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(Frames), $"A clip needs at least one frame and a stride of at least 1 (got {Frames}×{Stride}).");
        }
    }
}

/// <summary>The density of the gap Δ between the two pretraining clip starts on [0, T_max].</summary>
public enum IntervalDistribution
{
    /// <summary>Density ∝ (T_max − Δ): CVRL's default (power 1 in the reference code).</summary>
    LinearDecreasing,

    /// <summary>Constant density: an ablation.</summary>
    Uniform,

    /// <summary>Density ∝ Δ: an ablation.</summary>
    Increasing,

    /// <summary>
    /// Δ = 0: both clips are the same frames, augmented twice. With one-frame clips this is SimCLR on single
    /// frames, the paper's "SimCLR inflated" baseline before inflation.
    /// </summary>
    Zero,
}

/// <summary>
/// Where clips start, in grid frames (cvrl-method.md §4 and §7). Pure functions of their inputs and the
/// random source, so training can derive each draw from (seed, step, sample).
/// </summary>
public static class ClipSampler
{
    /// <summary>Frame indices of a clip starting at <paramref name="offset"/>; past the end the video loops.</summary>
    public static int[] Indices(int offset, ClipSpec clip, int length)
    {
        ArgumentNullException.ThrowIfNull(clip);
        clip.Validate();
        if (length < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "A video has at least one frame.");
        }

        var indices = new int[clip.Frames];
        for (int i = 0; i < indices.Length; i++)
        {
            indices[i] = (int)((offset + (long)i * clip.Stride) % length);
        }

        return indices;
    }

    /// <summary>Evaluation: <paramref name="clips"/> offsets at <c>int(linspace(0, max(0, L − T·s), K))</c>.</summary>
    public static int[] EvaluationOffsets(int length, ClipSpec clip, int clips)
    {
        ArgumentNullException.ThrowIfNull(clip);
        ArgumentOutOfRangeException.ThrowIfLessThan(clips, 1);
        int last = Math.Max(0, length - clip.Frames * clip.Stride);
        var offsets = new int[clips];
        for (int k = 0; k < clips; k++)
        {
            offsets[k] = clips == 1 ? 0 : (int)((double)last * k / (clips - 1));
        }

        return offsets;
    }

    /// <summary>Training: one offset uniform on [0, L − (T−1)·s), or on [0, L) when the video is shorter than a clip.</summary>
    public static int TrainingOffset(int length, ClipSpec clip, Random random)
    {
        ArgumentNullException.ThrowIfNull(clip);
        ArgumentNullException.ThrowIfNull(random);
        int reach = (clip.Frames - 1) * clip.Stride;
        return random.Next(length > reach ? length - reach : length);
    }

    /// <summary>
    /// CVRL pretraining: the starts of the two clips of one video. With T_max = L − (T−1)·s when the
    /// video is longer than a clip (else L), Δ is drawn from the chosen density on [0, T_max] by the
    /// reference code's integer bisection of the CDF, the first start is uniform on [0, T_max − Δ) and the
    /// second is Δ later; a video no longer than a clip gets two independent uniform starts on [0, L).
    /// The pair is then shuffled, so either clip may be the later one. <see cref="IntervalDistribution.Zero"/>
    /// gives one start uniform on [0, T_max) for both clips.
    /// </summary>
    public static (int First, int Second) PretrainingStarts(int length, ClipSpec clip, IntervalDistribution distribution, Random random)
    {
        ArgumentNullException.ThrowIfNull(clip);
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(length, 1);
        int reach = (clip.Frames - 1) * clip.Stride;
        int maxOffset = length > reach ? length - reach : length;
        if (distribution == IntervalDistribution.Zero)
        {
            int start = random.Next(maxOffset);
            return (start, start);
        }

        int first;
        int second;
        if (maxOffset < length)
        {
            int delta = SampleInterval(maxOffset, distribution, random);
            first = random.Next(Math.Max(1, maxOffset - delta));
            second = first + delta;
        }
        else
        {
            first = random.Next(length);
            second = random.Next(length);
        }

        return random.NextDouble() < 0.5 ? (first, second) : (second, first);
    }

    /// <summary>Δ on [0, <paramref name="maxInterval"/>) by integer bisection of the CDF, as the reference does.</summary>
    public static int SampleInterval(int maxInterval, IntervalDistribution distribution, Random random)
    {
        ArgumentNullException.ThrowIfNull(random);
        ArgumentOutOfRangeException.ThrowIfLessThan(maxInterval, 1);
        double u = random.NextDouble();
        int lo = 0;
        int hi = maxInterval;
        int k = maxInterval / 2;
        while (hi - lo > 1)
        {
            if (Cdf(k, maxInterval, distribution) > u)
            {
                hi = k;
                k = (k + lo) / 2;
            }
            else
            {
                lo = k;
                k = (hi + k) / 2;
            }
        }

        return k;
    }

    /// <summary>The CDF F(k) of Δ on [0, T]: 2k/T − k²/T², k/T, k²/T², or 1 (Δ = 0).</summary>
    public static double Cdf(double k, double maxInterval, IntervalDistribution distribution)
    {
        double x = k / maxInterval;
        return distribution switch
        {
            IntervalDistribution.LinearDecreasing => 2 * x - x * x,
            IntervalDistribution.Uniform => x,
            IntervalDistribution.Increasing => x * x,
            IntervalDistribution.Zero => 1,
            _ => throw new ArgumentOutOfRangeException(nameof(distribution), distribution, null),
        };
    }
}
