using CvrlServe.Core.Video;
using CvrlServe.Training.Augment;
using static TorchSharp.torch;

namespace CvrlServe.Training.Data;

/// <summary>
/// A training batch: 2B augmented clips [2B, 3, T, S, S]; rows i and i + B come from video i. Held as
/// managed floats so the training thread creates (and disposes) every tensor of its step itself.
/// </summary>
public sealed record PretrainBatch(long Step, float[] Clips, long[] Shape)
{
    public Tensor ToTensor(Device device) => tensor(Clips, Shape).to(device);
}

/// <summary>
/// Makes CVRL pretraining batches from cached videos. Batch <c>s</c> is a pure function of (seed, s):
/// the videos come from a per-epoch permutation drawn from (seed, epoch), and each video's clip pair
/// and augmentation from (seed, s, sample). So a resumed run sees exactly the batches it would have.
/// </summary>
public sealed class PretrainBatches(IReadOnlyList<CachedVideo> videos, ClipSpec clip, IntervalDistribution interval, ClipAugmenter augmenter, int batchSize, int seed)
{
    public PretrainBatch Make(long step)
    {
        using var scope = NewDisposeScope();
        var first = new Tensor[batchSize];
        var second = new Tensor[batchSize];
        for (int i = 0; i < batchSize; i++)
        {
            long position = step * batchSize + i;
            var video = videos[EpochOrder.VideoAt(seed, position, videos.Count)];
            var random = new Random(DerivedSeed(seed, step, i));
            var plan = SamplingPlan.PretrainingPair(video.Grid, clip, interval, random);
            first[i] = augmenter.Apply(video.ReadFrames(plan.Clips[0].Frames), clip.Frames, video.Height, video.Width, 0, random);
            second[i] = augmenter.Apply(video.ReadFrames(plan.Clips[1].Frames), clip.Frames, video.Height, video.Width, 1, random);
        }

        var clips = stack([.. first, .. second]);
        return new PretrainBatch(step, clips.data<float>().ToArray(), clips.shape);
    }

    /// <summary>
    /// Batches for steps [<paramref name="from"/>, <paramref name="to"/>) made on a background thread,
    /// at most <paramref name="ahead"/> waiting, so the step does not wait on decoding or augmentation.
    /// </summary>
    public Prefetcher<PretrainBatch> Prefetch(long from, long to, int ahead, CancellationToken cancellationToken) =>
        new(Make, from, to, ahead, cancellationToken);

    /// <summary>A deterministic 31-bit seed from a tuple: runs and resumes draw the same numbers.</summary>
    public static int DerivedSeed(long seed, long step, long sample)
    {
        ulong h = 14695981039346656037UL;
        foreach (long part in (ReadOnlySpan<long>)[seed, step, sample])
        {
            h = (h ^ (ulong)part) * 1099511628211UL;
            h ^= h >> 29;
        }

        return (int)(h & 0x7FFFFFFF);
    }
}

/// <summary>
/// Which video fills a given position of the endless training stream: every epoch is a permutation of all
/// videos drawn from (seed, epoch), so the stream is a pure function of the seed.
/// </summary>
internal static class EpochOrder
{
    [ThreadStatic]
    private static (int Seed, long Epoch, int[] Order)? _last;

    public static int VideoAt(int seed, long position, int count)
    {
        long epoch = position / count;
        if (_last is not { } last || last.Seed != seed || last.Epoch != epoch || last.Order.Length != count)
        {
            var order = Enumerable.Range(0, count).ToArray();
            new Random(PretrainBatches.DerivedSeed(seed, -1, epoch)).Shuffle(order);
            _last = last = (seed, epoch, order);
        }

        return last.Order[(int)(position % count)];
    }
}
