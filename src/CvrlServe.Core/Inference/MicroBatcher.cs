using System.Diagnostics;
using System.Threading.Channels;

namespace CvrlServe.Core.Inference;

/// <summary>Embeddings of one request's clips, and how long they queued and ran.</summary>
public sealed record BatchResult(float[][] Embeddings, TimeSpan Queued, TimeSpan Inference);

/// <summary>Counters for readiness pages and tests.</summary>
public sealed record BatcherStatistics(long Batches, long Clips, int LargestBatch, int Queued);

/// <summary>
/// Dynamic batching: clips from concurrent requests wait in one bounded queue and run together, up to
/// <see cref="EncoderSessionOptions.MaxBatchSize"/> clips or until the first has waited
/// <see cref="EncoderSessionOptions.MaxBatchWait"/>. Clips batch only with clips of the same shape. A
/// full queue refuses new requests with <see cref="OverloadedException"/>; a cancelled request's
/// clips are dropped before they run. One worker runs batches in order, reusing its input buffer.
/// </summary>
public sealed class MicroBatcher : IAsyncDisposable
{
    private readonly EncoderSession _session;
    private readonly EncoderSessionOptions _options;
    private readonly Channel<ClipWork> _queue = Channel.CreateUnbounded<ClipWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _worker;
    private readonly List<ClipWork> _deferred = [];
    private float[] _buffer = [];
    private int _queued;
    private long _batches;
    private long _clips;
    private int _largest;

    public MicroBatcher(EncoderSession session, EncoderSessionOptions options)
    {
        _session = session;
        _options = options;
        _worker = Task.Run(WorkAsync);
    }

    /// <summary>Test seam: awaited by the worker before each batch it forms.</summary>
    internal Func<Task>? BeforeBatch { get; set; }

    public BatcherStatistics Statistics => new(Interlocked.Read(ref _batches), Interlocked.Read(ref _clips), Volatile.Read(ref _largest), Volatile.Read(ref _queued));

    /// <summary>Queues the clips (each C×T×H×W floats of <paramref name="clipShape"/>) and returns their embeddings in order.</summary>
    public Task<BatchResult> EmbedAsync(IReadOnlyList<float[]> clips, int[] clipShape, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clips);
        ArgumentNullException.ThrowIfNull(clipShape);
        cancellationToken.ThrowIfCancellationRequested();
        if (clips.Count == 0)
        {
            return Task.FromResult(new BatchResult([], TimeSpan.Zero, TimeSpan.Zero));
        }

        int queued = Interlocked.Add(ref _queued, clips.Count);
        if (queued > _options.QueueCapacity && queued != clips.Count)
        {
            Interlocked.Add(ref _queued, -clips.Count);
            // A rough wait: the queue ahead at the last batch's pace, at least a second.
            throw new OverloadedException($"{queued - clips.Count} clips are waiting for the encoder, capacity {_options.QueueCapacity}",
                TimeSpan.FromSeconds(Math.Max(1, queued / Math.Max(1, _options.MaxBatchSize))));
        }

        var request = new Request(clips.Count, cancellationToken);
        string key = string.Join('x', clipShape);
        for (int i = 0; i < clips.Count; i++)
        {
            _queue.Writer.TryWrite(new ClipWork(request, i, clips[i], clipShape, key));
        }

        return request.Task;
    }

    /// <summary>Runs one batch of each size up to the maximum, so the first requests do not pay for allocation and tuning.</summary>
    public void WarmUp(int[] clipShape)
    {
        ArgumentNullException.ThrowIfNull(clipShape);
        int clipLength = clipShape.Aggregate(1, (a, b) => a * b);
        var input = new float[clipLength * _options.MaxBatchSize];
        var output = new float[_session.Dimension * _options.MaxBatchSize];
        for (int n = 1; n <= _options.MaxBatchSize; n++)
        {
            _session.Run(input, n, clipShape, output.AsSpan(0, n * _session.Dimension));
        }
    }

    public async ValueTask DisposeAsync()
    {
        _queue.Writer.TryComplete();
        await _stop.CancelAsync();
        try
        {
            await _worker;
        }
        catch (Exception e) when (e is OperationCanceledException or ChannelClosedException)
        {
            // Stopped.
        }

        _stop.Dispose();
    }

    private async Task WorkAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<ClipWork>(_options.MaxBatchSize);
        while (!_stop.IsCancellationRequested)
        {
            batch.Clear();
            var first = _deferred.Count > 0 ? Take(_deferred, 0) : await reader.ReadAsync(_stop.Token);
            if (BeforeBatch is { } hook)
            {
                await hook();
            }

            if (!Admit(first, batch))
            {
                continue;
            }

            var deadline = Stopwatch.StartNew();
            while (batch.Count < _options.MaxBatchSize)
            {
                int sameShape = _deferred.FindIndex(w => w.Key == first.Key);
                if (sameShape >= 0)
                {
                    Admit(Take(_deferred, sameShape), batch);
                    continue;
                }

                if (reader.TryRead(out var next))
                {
                    if (next.Key == first.Key)
                    {
                        Admit(next, batch);
                    }
                    else
                    {
                        _deferred.Add(next);
                    }

                    continue;
                }

                var left = _options.MaxBatchWait - deadline.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    break;
                }

                using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
                wait.CancelAfter(left);
                try
                {
                    await reader.WaitToReadAsync(wait.Token);
                }
                catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
                {
                    break;
                }
            }

            if (batch.Count > 0)
            {
                Run(batch);
            }
        }
    }

    /// <summary>Takes a dequeued clip into the batch unless its request was cancelled or already failed.</summary>
    private bool Admit(ClipWork work, List<ClipWork> batch)
    {
        Interlocked.Decrement(ref _queued);
        if (work.Request.IsDone)
        {
            return false;
        }

        batch.Add(work);
        return true;
    }

    private void Run(List<ClipWork> batch)
    {
        int[] shape = batch[0].Shape;
        int clipLength = batch[0].Clip.Length;
        int needed = clipLength * batch.Count;
        if (_buffer.Length < needed)
        {
            _buffer = new float[clipLength * _options.MaxBatchSize];
        }

        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].Clip.CopyTo(_buffer, i * clipLength);
        }

        int dimension = _session.Dimension;
        var output = new float[batch.Count * dimension];
        var clock = Stopwatch.StartNew();
        try
        {
            _session.Run(_buffer, batch.Count, shape, output);
        }
        catch (Exception e)
        {
            foreach (var work in batch)
            {
                work.Request.Fail(e);
            }

            return;
        }

        var inference = clock.Elapsed;
        long batchId = Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _clips, batch.Count);
        int largest;
        while ((largest = Volatile.Read(ref _largest)) < batch.Count && Interlocked.CompareExchange(ref _largest, batch.Count, largest) != largest)
        {
        }

        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].Request.Complete(batch[i].Index, output.AsSpan(i * dimension, dimension).ToArray(), batchId, inference);
        }
    }

    private static ClipWork Take(List<ClipWork> list, int index)
    {
        var work = list[index];
        list.RemoveAt(index);
        return work;
    }

    private sealed record ClipWork(Request Request, int Index, float[] Clip, int[] Shape, string Key);

    /// <summary>One caller's clips: completes when all have run, or fails/cancels as a whole.</summary>
    private sealed class Request
    {
        private readonly TaskCompletionSource<BatchResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        private readonly float[][] _embeddings;
        private readonly Stopwatch _queued = Stopwatch.StartNew();
        private readonly CancellationTokenRegistration _registration;
        private int _remaining;
        private long _inferenceTicks;
        private long _firstStartTicks = -1;
        private long _lastBatch;

        public Request(int clips, CancellationToken cancellationToken)
        {
            _embeddings = new float[clips][];
            _remaining = clips;
            _registration = cancellationToken.Register(() => _done.TrySetCanceled(cancellationToken));
        }

        public Task<BatchResult> Task => _done.Task;

        public bool IsDone => _done.Task.IsCompleted;

        /// <summary>Called by the single worker, batch after batch: inference time counts once per batch.</summary>
        public void Complete(int index, float[] embedding, long batch, TimeSpan inference)
        {
            _embeddings[index] = embedding;
            Interlocked.CompareExchange(ref _firstStartTicks, (_queued.Elapsed - inference).Ticks, -1);
            if (Interlocked.Exchange(ref _lastBatch, batch) != batch)
            {
                Interlocked.Add(ref _inferenceTicks, inference.Ticks);
            }

            if (Interlocked.Decrement(ref _remaining) == 0)
            {
                _registration.Dispose();
                _done.TrySetResult(new BatchResult(_embeddings, TimeSpan.FromTicks(Interlocked.Read(ref _firstStartTicks)), TimeSpan.FromTicks(Interlocked.Read(ref _inferenceTicks))));
            }
        }

        public void Fail(Exception error)
        {
            _registration.Dispose();
            _done.TrySetException(error);
        }
    }
}
