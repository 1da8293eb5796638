using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed class MicroBatcherTests
{
    private static readonly int[] Shape = [3, 4, 32, 32];
    private static readonly int ClipLength = 3 * 4 * 32 * 32;

    private static float[][] Clips(int count, int seed)
    {
        var all = TinyModels.RandomClips(count, Shape, seed);
        return Enumerable.Range(0, count).Select(i => all.AsSpan(i * ClipLength, ClipLength).ToArray()).ToArray();
    }

    private static float[] Unbatched(EncoderSession session, float[] clip)
    {
        var output = new float[session.Dimension];
        session.Run(clip, 1, Shape, output);
        return output;
    }

    [Fact]
    public async Task EmbedAsync_ManyConcurrentRequests_BatchesFormAndMatchUnbatchedRuns()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions());
        var options = new EncoderSessionOptions { MaxBatchSize = 8, MaxBatchWait = TimeSpan.FromMilliseconds(30) };
        await using var batcher = new MicroBatcher(session, options);
        var requests = Enumerable.Range(0, 24).Select(i => Clips(1 + i % 3, seed: i)).ToArray();

        var results = await Task.WhenAll(requests.Select(r => Task.Run(() => batcher.EmbedAsync(r, Shape))));

        for (int r = 0; r < requests.Length; r++)
        {
            for (int c = 0; c < requests[r].Length; c++)
            {
                float[] expected = Unbatched(session, requests[r][c]);
                float maxDiff = expected.Zip(results[r].Embeddings[c], (a, b) => Math.Abs(a - b)).Max();
                Assert.True(maxDiff <= 1e-5f, $"request {r} clip {c}: {maxDiff}");
            }
        }

        var stats = batcher.Statistics;
        Assert.Equal(requests.Sum(r => r.Length), stats.Clips);
        Assert.True(stats.LargestBatch > 1, $"largest batch {stats.LargestBatch}");
        Assert.True(stats.Batches < stats.Clips, $"{stats.Batches} batches for {stats.Clips} clips");
    }

    [Fact]
    public async Task EmbedAsync_CancelledWhileQueued_CancelsAndItsClipsDoNotRun()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions());
        await using var batcher = new MicroBatcher(session, new EncoderSessionOptions { MaxBatchSize = 2, MaxBatchWait = TimeSpan.Zero });
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        batcher.BeforeBatch = () => gate.Task;

        var first = batcher.EmbedAsync(Clips(2, 1), Shape);  // the worker holds this at the gate
        using var cancel = new CancellationTokenSource();
        var doomed = batcher.EmbedAsync(Clips(6, 2), Shape, cancel.Token);
        var last = batcher.EmbedAsync(Clips(1, 3), Shape);
        await cancel.CancelAsync();
        gate.SetResult();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => doomed);
        await Task.WhenAll(first, last);
        Assert.Equal(3, batcher.Statistics.Clips); // the cancelled request's 6 clips never ran
        Assert.Equal(0, batcher.Statistics.Queued);
    }

    [Fact]
    public async Task EmbedAsync_QueueFull_OverloadedWithRetryAfter()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions());
        await using var batcher = new MicroBatcher(session, new EncoderSessionOptions { MaxBatchSize = 1, QueueCapacity = 4, MaxBatchWait = TimeSpan.Zero });
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        batcher.BeforeBatch = () => gate.Task;
        var accepted = new List<Task<BatchResult>>();
        OverloadedException? refused = null;
        for (int i = 0; i < 50 && refused is null; i++)
        {
            try
            {
                accepted.Add(batcher.EmbedAsync(Clips(2, i), Shape));
            }
            catch (OverloadedException e)
            {
                refused = e;
            }
        }

        gate.SetResult();
        Assert.NotNull(refused);
        Assert.Equal(2, accepted.Count); // 2 + 2 clips fill the 4 places (one may already be with the worker)
        Assert.True(refused.RetryAfter >= TimeSpan.FromSeconds(1));
        await Task.WhenAll(accepted);
    }
}
