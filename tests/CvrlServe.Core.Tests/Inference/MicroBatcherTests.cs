using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed class MicroBatcherTests
{
    private static readonly int[] Shape = [3, 4, 32, 32];
    private const int ClipLength = 3 * 4 * 32 * 32;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

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

    private static EncoderSession Tiny() => EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions { Provider = ProviderPreference.Cpu });

    [Fact]
    public async Task EmbedAsync_ManyConcurrentRequests_BatchesFormAndMatchUnbatchedRuns()
    {
        using var session = Tiny();
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
        using var session = Tiny();
        using var runner = new HeldRunner(session);
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 2, MaxBatchWait = TimeSpan.Zero });

        var first = batcher.EmbedAsync(Clips(2, 1), Shape);
        await runner.Entered(1); // the worker holds this batch
        using var cancel = new CancellationTokenSource();
        var doomed = batcher.EmbedAsync(Clips(6, 2), Shape, cancel.Token);
        var last = batcher.EmbedAsync(Clips(1, 3), Shape);
        await cancel.CancelAsync();
        runner.Open();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => doomed);
        await Task.WhenAll(first, last).WaitAsync(Patience);
        Assert.Equal(3, batcher.Statistics.Clips); // the cancelled request's 6 clips never ran
        Assert.Equal((0, 0L), (batcher.Statistics.Queued, batcher.Statistics.QueuedBytes));
    }

    [Fact]
    public async Task EmbedAsync_CancelledWhileQueued_ItsQueueSpaceIsFreeAtOnce()
    {
        long clipBytes = ClipLength * sizeof(float);
        using var runner = new HeldRunner();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 1, QueueCapacityBytes = 3 * clipBytes, MaxBatchWait = TimeSpan.Zero });
        var first = batcher.EmbedAsync(Clips(1, 0), Shape);
        await runner.Entered(1); // the worker holds the first clip: nothing is dequeued until it is released
        using var cancel = new CancellationTokenSource();
        var gaveUp = batcher.EmbedAsync(Clips(3, 1), Shape, cancel.Token);
        Assert.Equal(3 * clipBytes, batcher.Statistics.QueuedBytes);
        await Assert.ThrowsAsync<OverloadedException>(() => batcher.EmbedAsync(Clips(1, 2), Shape));

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => gaveUp);

        // The worker has not moved, yet the cancelled request's space is back: a new request fits.
        Assert.Equal((0, 0L), (batcher.Statistics.Queued, batcher.Statistics.QueuedBytes));
        var next = batcher.EmbedAsync(Clips(3, 3), Shape);
        runner.Open();
        await Task.WhenAll(first, next).WaitAsync(Patience);
        Assert.Equal((4L, 0L), (batcher.Statistics.Clips, batcher.Statistics.QueuedBytes));
    }

    [Fact]
    public async Task EmbedAsync_QueueFullOfClips_OverloadedWithRetryAfter()
    {
        using var runner = new HeldRunner();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 1, QueueCapacity = 4, MaxBatchWait = TimeSpan.Zero });
        var accepted = new List<Task<BatchResult>> { batcher.EmbedAsync(Clips(2, 0), Shape) };
        await runner.Entered(1); // one clip with the worker, one queued
        OverloadedException? refused = null;
        for (int i = 1; i < 50 && refused is null; i++)
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

        runner.Open();
        Assert.NotNull(refused);
        Assert.Equal(2, accepted.Count); // 1 + 2 clips queued; 2 more would make 5 > 4
        Assert.True(refused.RetryAfter >= TimeSpan.FromSeconds(1));
        await Task.WhenAll(accepted).WaitAsync(Patience);
    }

    [Fact]
    public async Task EmbedAsync_QueueFullOfBytes_OverloadedAndARequestThatCanNeverFit_OverTheLimit()
    {
        long clipBytes = ClipLength * sizeof(float);
        using var runner = new HeldRunner();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 1, QueueCapacity = 1000, QueueCapacityBytes = 3 * clipBytes, MaxBatchWait = TimeSpan.Zero });
        var accepted = new List<Task<BatchResult>> { batcher.EmbedAsync(Clips(1, 0), Shape) };
        await runner.Entered(1); // with the worker: no longer queued

        for (int i = 1; i <= 3; i++)
        {
            accepted.Add(batcher.EmbedAsync(Clips(1, i), Shape));
        }

        Assert.Equal(3 * clipBytes, batcher.Statistics.QueuedBytes);
        await Assert.ThrowsAsync<OverloadedException>(() => batcher.EmbedAsync(Clips(1, 9), Shape));
        var tooLarge = await Assert.ThrowsAsync<LimitExceededException>(() => batcher.EmbedAsync(Clips(4, 9), Shape));
        Assert.Equal((Limit.QueuedBytes, 4.0 * clipBytes, 3.0 * clipBytes), (tooLarge.Limit, tooLarge.Actual, tooLarge.Maximum));

        runner.Open();
        await Task.WhenAll(accepted).WaitAsync(Patience);
        Assert.Equal((4L, 0L), (batcher.Statistics.Clips, batcher.Statistics.QueuedBytes));
    }

    [Theory]
    [InlineData(0, ClipLength - 1)]
    [InlineData(1, ClipLength + 1)]
    [InlineData(0, 10)] // sized the batch buffer too small for the next clip: the old worker died copying it
    [InlineData(1, 0)]
    public async Task EmbedAsync_ClipOfTheWrongLength_RefusedAndTheNextRequestSucceeds(int which, int length)
    {
        using var session = Tiny();
        await using var batcher = new MicroBatcher(session, new EncoderSessionOptions { MaxBatchWait = TimeSpan.Zero });
        var clips = Clips(2, 1);
        clips[which] = new float[length];

        await Assert.ThrowsAsync<InvalidRequestException>(() => batcher.EmbedAsync(clips, Shape).WaitAsync(Patience));

        var result = await batcher.EmbedAsync(Clips(2, 2), Shape).WaitAsync(Patience);
        Assert.Equal(2, result.Embeddings.Length);
        Assert.Equal((1L, 2L, 0, 0L, 0L), (batcher.Statistics.Batches, batcher.Statistics.Clips, batcher.Statistics.Queued, batcher.Statistics.QueuedBytes, batcher.Statistics.FailedBatches));
    }

    [Theory]
    [InlineData(new[] { 3, 4, 32 })]
    [InlineData(new[] { 3, 0, 32, 32 })]
    [InlineData(new[] { 3, -4, 32, 32 })]
    [InlineData(new[] { 3, 100_000, 100_000, 100_000 })]
    [InlineData(new[] { 65536, 65536, 1, 1 })]
    public async Task EmbedAsync_ShapeNotPositiveOrTooLarge_Refused(int[] shape)
    {
        using var runner = new HeldRunner();
        runner.Open();
        await using var batcher = runner.Batcher(new EncoderSessionOptions());
        await Assert.ThrowsAsync<InvalidRequestException>(() => batcher.EmbedAsync([new float[12]], shape).WaitAsync(Patience));
        Assert.Equal(0, batcher.Statistics.Queued);
    }

    [Fact]
    public async Task EmbedAsync_BatchWhoseRunThrows_FailsOnlyItsRequestAndTheWorkerGoesOn()
    {
        using var session = Tiny();
        using var runner = new HeldRunner(session) { FailOnCall = 1 };
        runner.Open();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchWait = TimeSpan.Zero });

        var failed = await Assert.ThrowsAsync<InferenceFailedException>(() => batcher.EmbedAsync(Clips(2, 1), Shape).WaitAsync(Patience));
        var next = await batcher.EmbedAsync(Clips(1, 2), Shape).WaitAsync(Patience);

        Assert.DoesNotContain("native", failed.Message, StringComparison.Ordinal);
        Assert.Contains("native", failed.Detail, StringComparison.Ordinal);
        Assert.Equal(Unbatched(session, Clips(1, 2)[0]), next.Embeddings[0]);
        var stats = batcher.Statistics;
        Assert.Equal((1L, 1L, 1, 0, 0L, 1L), (stats.Batches, stats.Clips, stats.LargestBatch, stats.Queued, stats.QueuedBytes, stats.FailedBatches));
    }

    [Fact]
    public async Task DisposeAsync_RequestsRunningAndQueued_FailAsNotReadyAndTheRunIsStopped()
    {
        using var runner = new HeldRunner();
        var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 1, MaxBatchWait = TimeSpan.Zero });
        var running = batcher.EmbedAsync(Clips(1, 1), Shape);
        await runner.Entered(1);
        var queued = new[] { batcher.EmbedAsync(Clips(2, 2), Shape), batcher.EmbedAsync(Clips(1, 3), Shape) };

        await batcher.DisposeAsync().AsTask().WaitAsync(Patience);

        foreach (var request in queued.Prepend(running))
        {
            await Assert.ThrowsAsync<ModelNotReadyException>(() => request.WaitAsync(Patience));
        }

        Assert.True(runner.Stopped.Task.IsCompleted);
        await Assert.ThrowsAsync<ModelNotReadyException>(() => batcher.EmbedAsync(Clips(1, 4), Shape));
        Assert.Equal((0, 0L), (batcher.Statistics.Queued, batcher.Statistics.QueuedBytes));
        await batcher.DisposeAsync(); // idempotent
    }

    [Fact]
    public async Task EmbedAsync_DeadlinePassesWhileQueued_FailsAsTimedOutWithoutRunning()
    {
        // The held run ignores the batcher's stop, so the queued request expires while it is still queued.
        using var runner = new HeldRunner { HonoursStop = false };
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 1, MaxBatchWait = TimeSpan.Zero, InferenceTimeout = TimeSpan.FromMilliseconds(300) });
        var running = batcher.EmbedAsync(Clips(1, 1), Shape);
        await runner.Entered(1);
        var queued = batcher.EmbedAsync(Clips(1, 2), Shape);

        var expired = await Assert.ThrowsAsync<DeadlineExceededException>(() => queued.WaitAsync(Patience));
        await Assert.ThrowsAsync<DeadlineExceededException>(() => running.WaitAsync(Patience));
        runner.Open();
        var fresh = await batcher.EmbedAsync(Clips(1, 3), Shape).WaitAsync(Patience);

        Assert.Equal(TimeSpan.FromMilliseconds(300), expired.Timeout);
        Assert.Equal(2, runner.Calls); // the expired queued request never ran
        Assert.Single(fresh.Embeddings);
    }

    [Fact]
    public async Task EmbedAsync_DeadlinePassesWhileRunning_RunIsStopped()
    {
        using var runner = new HeldRunner();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchWait = TimeSpan.Zero, InferenceTimeout = TimeSpan.FromMilliseconds(300) });
        var running = batcher.EmbedAsync(Clips(2, 1), Shape);
        await runner.Entered(1);

        await Assert.ThrowsAsync<DeadlineExceededException>(() => running.WaitAsync(Patience));
        await runner.Stopped.Task.WaitAsync(Patience);
        runner.Open();
        Assert.Single((await batcher.EmbedAsync(Clips(1, 2), Shape).WaitAsync(Patience)).Embeddings);
        Assert.Equal(0L, batcher.Statistics.FailedBatches); // stopped because nobody waited, not failed
    }

    [Fact]
    public async Task EmbedAsync_OnlyRequestOfARunningBatchCancelled_RunStops()
    {
        using var runner = new HeldRunner();
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 2, MaxBatchWait = TimeSpan.Zero });
        using var cancel = new CancellationTokenSource();
        var alone = batcher.EmbedAsync(Clips(2, 1), Shape, cancel.Token);
        await runner.Entered(1);

        await cancel.CancelAsync();

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => alone.WaitAsync(Patience));
        await runner.Stopped.Task.WaitAsync(Patience);
        runner.Open();
        Assert.Single((await batcher.EmbedAsync(Clips(1, 2), Shape).WaitAsync(Patience)).Embeddings);
    }

    [Fact]
    public async Task EmbedAsync_OneOfTwoRequestsInARunningBatchCancelled_RunGoesOnForTheOther()
    {
        using var runner = new HeldRunner();
        // A long wait so both requests join one batch; the second fills it and it runs at once.
        await using var batcher = runner.Batcher(new EncoderSessionOptions { MaxBatchSize = 2, MaxBatchWait = TimeSpan.FromSeconds(10) });
        using var cancel = new CancellationTokenSource();
        var cancelled = batcher.EmbedAsync(Clips(1, 1), Shape, cancel.Token);
        var kept = batcher.EmbedAsync(Clips(1, 2), Shape);
        await runner.Entered(1);

        await cancel.CancelAsync();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => cancelled.WaitAsync(Patience));
        runner.Open();

        Assert.Single((await kept.WaitAsync(Patience)).Embeddings);
        Assert.False(runner.Stopped.Task.IsCompleted);
        Assert.Equal(2, batcher.Statistics.LargestBatch);
    }

    /// <summary>A batch runner that holds every run until <see cref="Open"/> (or until its run is stopped), over a real session or a stand-in.</summary>
    private sealed class HeldRunner(EncoderSession? session = null) : IDisposable
    {
        private readonly ManualResetEventSlim _gate = new();
        private readonly TaskCompletionSource[] _entered = Enumerable.Range(0, 16).Select(_ => new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously)).ToArray();
        private int _calls;

        public int Calls => Volatile.Read(ref _calls);

        /// <summary>The call (1-based) that throws as if ONNX Runtime had failed; 0 for none.</summary>
        public int FailOnCall { get; init; }

        /// <summary>Whether a held run ends when the batcher stops it (as ONNX Runtime's terminate flag does).</summary>
        public bool HonoursStop { get; init; } = true;

        /// <summary>Set when a held run saw its cancellation token (the batcher stopped it).</summary>
        public TaskCompletionSource Stopped { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

        public MicroBatcher Batcher(EncoderSessionOptions options) => new("tiny", session?.Dimension ?? 64, options, Run);

        public Task Entered(int call) => _entered[call - 1].Task.WaitAsync(Patience);

        public void Open() => _gate.Set();

        public void Dispose() => _gate.Dispose();

        private void Run(Memory<float> input, int count, int[] clipShape, Span<float> output, CancellationToken cancellationToken)
        {
            int call = Interlocked.Increment(ref _calls);
            _entered[Math.Min(call, _entered.Length) - 1].TrySetResult();
            try
            {
                _gate.Wait(HonoursStop ? cancellationToken : CancellationToken.None);
            }
            catch (OperationCanceledException)
            {
                Stopped.TrySetResult();
                throw;
            }

            if (call == FailOnCall)
            {
                throw new InvalidOperationException("native failure text");
            }

            if (session is null)
            {
                output.Fill(call);
            }
            else
            {
                session.Run(input, count, clipShape, output, cancellationToken: cancellationToken);
            }
        }
    }
}
