using CvrlServe.Core.Video;
using CvrlServe.Training.Augment;
using static TorchSharp.torch;

namespace CvrlServe.Training.Data;

/// <summary>A supervised batch: clips [B, 3, T, S, S] and their class indices.</summary>
public sealed record SupervisedBatch(long Step, float[] Clips, long[] Shape, long[] Labels);

/// <summary>
/// Labelled batches: one clip per video at a uniform random offset, crop and flip only, drawn from
/// (seed, step, sample) like <see cref="PretrainBatches"/>.
/// </summary>
public sealed class SupervisedBatches(IReadOnlyList<(CachedVideo Video, int Label)> videos, ClipSpec clip, ClipAugmenter augmenter, int batchSize, int seed)
{
    public SupervisedBatch Make(long step)
    {
        using var scope = NewDisposeScope();
        var clips = new Tensor[batchSize];
        var labels = new long[batchSize];
        for (int i = 0; i < batchSize; i++)
        {
            long position = step * batchSize + i;
            var (video, label) = videos[EpochOrder.VideoAt(seed, position, videos.Count)];
            var random = new Random(PretrainBatches.DerivedSeed(seed, step, i));
            var plan = SamplingPlan.Training(video.Grid, clip, random);
            clips[i] = augmenter.Apply(video.ReadFrames(plan.Clips[0].Frames), clip.Frames, video.Height, video.Width, 0, random);
            labels[i] = label;
        }

        var batch = stack(clips);
        return new SupervisedBatch(step, batch.data<float>().ToArray(), batch.shape, labels);
    }

    public Prefetcher<SupervisedBatch> Prefetch(long from, long to, int ahead, CancellationToken cancellationToken) =>
        new(Make, from, to, ahead, cancellationToken);
}
