using System.Diagnostics;
using System.Threading.Channels;

namespace CvrlServe.Core.Inference;

/// <summary>Embeddings of one request's clips, and how long they queued and ran.</summary>
public sealed record BatchResult(float[][] Embeddings, TimeSpan Queued, TimeSpan Inference);

/// <summary>Counters for readiness pages and tests: what ran, what failed, and what waits now.</summary>
/// <param name="Batches">Batches that ran to the end.</param>
/// <param name="Clips">Clips in those batches.</param>
/// <param name="FailedBatches">Batches that failed (their requests failed; the worker went on).</param>
public sealed record BatcherStatistics(long Batches, long Clips, int LargestBatch, int Queued, long QueuedBytes, long FailedBatches);

/// <summary>
/// Dynamic batching: clips from concurrent requests wait in one queue and run together, up to
/// <see cref="EncoderSessionOptions.MaxBatchSize"/> clips or until the first has waited
/// <see cref="EncoderSessionOptions.MaxBatchWait"/>. Clips batch only with clips of the same shape.
/// <para>
/// <see cref="EmbedAsync"/> validates clips before they queue (<see cref="InvalidRequestException"/>), refuses
/// work beyond the queue's clip and byte capacity (<see cref="OverloadedException"/>, or
/// <see cref="LimitExceededException"/> for a request that could never fit), and fails a request that has
/// not finished within <see cref="EncoderSessionOptions.InferenceTimeout"/> of submission with
/// <see cref="DeadlineExceededException"/>. A cancelled or expired request's queued clips are dropped;
/// a running batch is stopped when no request in it still waits. A batch that fails fails only its
/// requests: the one worker goes on with the next. Disposal fails whatever still waits with
/// <see cref="ModelNotReadyException"/>.
/// </para>
/// </summary>
public sealed class MicroBatcher : IAsyncDisposable
{
    private readonly string _model;
    private readonly int _dimension;
    private readonly BatchRunner _run;
    private readonly EncoderSessionOptions _options;
    private readonly Channel<ClipWork> _queue = Channel.CreateUnbounded<ClipWork>(new UnboundedChannelOptions { SingleReader = true });
    private readonly CancellationTokenSource _stop = new();
    private readonly List<ClipWork> _deferred = [];
    private readonly Lazy<Task> _disposal;
    private readonly Task _worker;
    private float[] _buffer = [];
    private int _disposed;
    private int _queued;
    private long _queuedBytes;
    private long _batches;
    private long _clips;
    private long _failed;
    private long _lastBatchTicks;
    private int _largest;

    public MicroBatcher(EncoderSession session, EncoderSessionOptions options)
        : this(session?.Name ?? throw new ArgumentNullException(nameof(session)), session.Dimension, options,
            (input, count, shape, output, token) => session.Run(input, count, shape, output, cancellationToken: token))
    {
    }

    /// <summary>A batcher over any runner: the seam tests use to hold, fail or watch a batch.</summary>
    internal MicroBatcher(string model, int dimension, EncoderSessionOptions options, BatchRunner run)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        _model = model;
        _dimension = dimension;
        _options = options;
        _run = run;
        _disposal = new Lazy<Task>(DisposeCoreAsync);
        _worker = Task.Run(WorkAsync);
    }

    /// <summary>Runs one batch: fills <paramref name="output"/> or throws; stops when <paramref name="cancellationToken"/> is cancelled.</summary>
    internal delegate void BatchRunner(Memory<float> input, int count, int[] clipShape, Span<float> output, CancellationToken cancellationToken);

    public BatcherStatistics Statistics => new(Interlocked.Read(ref _batches), Interlocked.Read(ref _clips), Volatile.Read(ref _largest),
        Volatile.Read(ref _queued), Interlocked.Read(ref _queuedBytes), Interlocked.Read(ref _failed));

    /// <summary>Queues the clips (each C×T×H×W floats of <paramref name="clipShape"/>) and returns their embeddings in order.</summary>
    public Task<BatchResult> EmbedAsync(IReadOnlyList<float[]> clips, int[] clipShape, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clips);
        ArgumentNullException.ThrowIfNull(clipShape);
        cancellationToken.ThrowIfCancellationRequested();
        int clipLength = ClipLength(clipShape);
        for (int i = 0; i < clips.Count; i++)
        {
            if (clips[i] is not { } clip || clip.Length != clipLength)
            {
                throw new InvalidRequestException($"Clip {i} has {clips[i]?.Length ?? 0} values; a {string.Join('x', clipShape)} clip has {clipLength}.");
            }
        }

        if (clips.Count == 0)
        {
            return Task.FromResult(new BatchResult([], TimeSpan.Zero, TimeSpan.Zero));
        }

        if (Volatile.Read(ref _disposed) != 0)
        {
            throw Stopping();
        }

        long clipBytes = (long)clipLength * sizeof(float);
        long bytes = clips.Count * clipBytes;
        if (bytes > _options.QueueCapacityBytes)
        {
            throw new LimitExceededException(Limit.QueuedBytes, bytes, _options.QueueCapacityBytes);
        }

        long queuedBytes = Interlocked.Add(ref _queuedBytes, bytes);
        int queued = Interlocked.Add(ref _queued, clips.Count);
        if (queuedBytes > _options.QueueCapacityBytes || (queued > _options.QueueCapacity && queued != clips.Count))
        {
            Interlocked.Add(ref _queuedBytes, -bytes);
            Interlocked.Add(ref _queued, -clips.Count);
            // A rough wait: the batches ahead at the last batch's pace, at least a second.
            long ahead = (queued - clips.Count) / _options.MaxBatchSize + 1;
            throw new OverloadedException($"{queued - clips.Count} clips ({(queuedBytes - bytes) >> 20} MiB) are waiting for the encoder",
                TimeSpan.FromTicks(Math.Max(TimeSpan.TicksPerSecond, ahead * Interlocked.Read(ref _lastBatchTicks))));
        }

        var request = new Request(clips.Count, _options.InferenceTimeout, Unqueue, cancellationToken);
        int[] shape = (int[])clipShape.Clone();
        string key = string.Join('x', shape);
        for (int i = 0; i < clips.Count; i++)
        {
            var work = new ClipWork(request, i, clips[i], shape, key, clipBytes);
            request.Track(work);
            if (!_queue.Writer.TryWrite(work))
            {
                // Stopped meanwhile: what was written is dropped by the disposal, the rest is released here.
                Interlocked.Add(ref _queuedBytes, -(clips.Count - i) * clipBytes);
                Interlocked.Add(ref _queued, -(clips.Count - i));
                request.Fail(Stopping());
                break;
            }
        }

        return request.Task;
    }

    /// <summary>Runs one batch of each size up to the maximum, so the first requests do not pay for allocation and tuning.</summary>
    public void WarmUp(int[] clipShape)
    {
        ArgumentNullException.ThrowIfNull(clipShape);
        int clipLength = ClipLength(clipShape);
        var input = new float[clipLength * _options.MaxBatchSize];
        var output = new float[_dimension * _options.MaxBatchSize];
        for (int n = 1; n <= _options.MaxBatchSize; n++)
        {
            _run(input, n, clipShape, output.AsSpan(0, n * _dimension), _stop.Token);
        }
    }

    /// <summary>Stops the worker (a running batch is stopped) and fails every request still waiting. Idempotent.</summary>
    public ValueTask DisposeAsync() => new(_disposal.Value);

    private async Task DisposeCoreAsync()
    {
        Volatile.Write(ref _disposed, 1);
        await _stop.CancelAsync();
        // After this no write succeeds, so what the drain below misses was never queued.
        _queue.Writer.TryComplete();
        await _worker;
        var stopping = Stopping();
        foreach (var work in _deferred)
        {
            Drop(work, stopping);
        }

        _deferred.Clear();
        while (_queue.Reader.TryRead(out var work))
        {
            Drop(work, stopping);
        }

        _stop.Dispose();
    }

    private ModelNotReadyException Stopping() => new(_model, "it is being replaced or stopped.");

    /// <summary>C×T×H×W of a valid clip shape, small enough that a full batch fits one array.</summary>
    private int ClipLength(int[] clipShape)
    {
        if (clipShape.Length != 4 || clipShape.Any(d => d < 1))
        {
            throw new InvalidRequestException("A clip shape is four positive sizes: channels, frames, height, width.");
        }

        long length = 1;
        foreach (int size in clipShape)
        {
            length *= size;
            if (length > Array.MaxLength / _options.MaxBatchSize)
            {
                throw new InvalidRequestException($"A {string.Join('x', clipShape)} clip is too large to batch.");
            }
        }

        return (int)length;
    }

    private async Task WorkAsync()
    {
        var reader = _queue.Reader;
        var batch = new List<ClipWork>(_options.MaxBatchSize);
        while (true)
        {
            batch.Clear();
            try
            {
                var first = _deferred.Count > 0 ? Take(_deferred, 0) : await reader.ReadAsync(_stop.Token);
                if (!Admit(first, batch))
                {
                    continue;
                }

                await GatherAsync(first.Key, batch);
                Run(batch);
            }
            catch (Exception e) when (_stop.IsCancellationRequested && e is OperationCanceledException or ChannelClosedException)
            {
                FailAll(batch, Stopping());
                return;
            }
            catch (Exception e)
            {
                // Nothing one batch does may end the worker: fail its requests and go on.
                Interlocked.Increment(ref _failed);
                FailAll(batch, e as CvrlException ?? new InferenceFailedException(_model, inputRejected: false, e.Message, e));
            }
        }
    }

    /// <summary>Adds clips of the first one's shape until the batch is full or the first has waited long enough.</summary>
    private async Task GatherAsync(string key, List<ClipWork> batch)
    {
        var reader = _queue.Reader;
        var waited = Stopwatch.StartNew();
        while (batch.Count < _options.MaxBatchSize)
        {
            int sameShape = _deferred.FindIndex(w => w.Key == key);
            if (sameShape >= 0)
            {
                Admit(Take(_deferred, sameShape), batch);
                continue;
            }

            if (reader.TryRead(out var next))
            {
                if (next.Key == key)
                {
                    Admit(next, batch);
                }
                else
                {
                    _deferred.Add(next);
                }

                continue;
            }

            var left = _options.MaxBatchWait - waited.Elapsed;
            if (left <= TimeSpan.Zero)
            {
                return;
            }

            using var wait = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
            wait.CancelAfter(left);
            try
            {
                if (!await reader.WaitToReadAsync(wait.Token))
                {
                    return;
                }
            }
            catch (OperationCanceledException) when (!_stop.IsCancellationRequested)
            {
                return;
            }
        }
    }

    /// <summary>Takes a dequeued clip into the batch unless its request has already ended.</summary>
    private bool Admit(ClipWork work, List<ClipWork> batch)
    {
        if (!Unqueue(work) || work.Request.IsDone)
        {
            return false; // ended while queued: its counts and its clip were released then
        }

        batch.Add(work);
        return true;
    }

    private void Drop(ClipWork work, Exception error)
    {
        Unqueue(work);
        work.Request.Fail(error);
    }

    /// <summary>
    /// Takes a clip off the queue's counts, once: when the worker dequeues it, or as soon as its request
    /// ends (cancelled, expired, failed) while it still waits, so a request that gave up stops holding
    /// queue space at once. Returns whether this call released it.
    /// </summary>
    private bool Unqueue(ClipWork work)
    {
        if (Interlocked.Exchange(ref work.Unqueued, 1) != 0)
        {
            return false;
        }

        Interlocked.Decrement(ref _queued);
        Interlocked.Add(ref _queuedBytes, -work.Bytes);
        return true;
    }

    private static void FailAll(List<ClipWork> batch, Exception error)
    {
        foreach (var work in batch)
        {
            work.Request.Fail(error);
        }
    }

    private void Run(List<ClipWork> batch)
    {
        if (batch.Count == 0)
        {
            return;
        }

        int clipLength = batch[0].Clip!.Length;
        int needed = clipLength * batch.Count;
        if (_buffer.Length < needed)
        {
            _buffer = new float[clipLength * _options.MaxBatchSize];
        }

        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].Clip!.CopyTo(_buffer, i * clipLength);
        }

        var output = new float[batch.Count * _dimension];
        // The run stops when the batcher stops or when every request in the batch has ended (cancelled, expired).
        using var run = CancellationTokenSource.CreateLinkedTokenSource(_stop.Token);
        var requests = batch.Select(w => w.Request).Distinct().ToArray();
        int waiting = requests.Length;
        var registrations = new List<CancellationTokenRegistration>(requests.Length);
        var clock = Stopwatch.StartNew();
        try
        {
            foreach (var request in requests)
            {
                registrations.Add(request.Ended.UnsafeRegister(_ =>
                {
                    if (Interlocked.Decrement(ref waiting) == 0)
                    {
                        run.Cancel();
                    }
                }, null));
            }

            _run(_buffer.AsMemory(0, needed), batch.Count, batch[0].Shape, output, run.Token);
        }
        catch (OperationCanceledException) when (run.IsCancellationRequested && !_stop.IsCancellationRequested)
        {
            return; // Nobody waits for this batch any more.
        }
        finally
        {
            // Waits for a callback in progress, so none touches the run source after its disposal.
            foreach (var registration in registrations)
            {
                registration.Dispose();
            }
        }

        var inference = clock.Elapsed;
        Interlocked.Exchange(ref _lastBatchTicks, inference.Ticks);
        long batchId = Interlocked.Increment(ref _batches);
        Interlocked.Add(ref _clips, batch.Count);
        var model = new KeyValuePair<string, object?>("model", _model);
        InferenceMetrics.BatchSize.Record(batch.Count, model);
        InferenceMetrics.BatchDuration.Record(inference.TotalSeconds, model);
        int largest;
        while ((largest = Volatile.Read(ref _largest)) < batch.Count && Interlocked.CompareExchange(ref _largest, batch.Count, largest) != largest)
        {
        }

        for (int i = 0; i < batch.Count; i++)
        {
            batch[i].Request.Complete(batch[i].Index, output.AsSpan(i * _dimension, _dimension).ToArray(), batchId, inference);
        }
    }

    private static ClipWork Take(List<ClipWork> list, int index)
    {
        var work = list[index];
        list.RemoveAt(index);
        return work;
    }

    private sealed class ClipWork(Request request, int index, float[] clip, int[] shape, string key, long bytes)
    {
        /// <summary>1 once taken off the queue's counts (see <see cref="Unqueue"/>).</summary>
        public int Unqueued;

        public Request Request { get; } = request;

        public int Index { get; } = index;

        /// <summary>The clip's values; let go (null) when its request ends while it waits, so they can be collected.</summary>
        public float[]? Clip { get; set; } = clip;

        public int[] Shape { get; } = shape;

        public string Key { get; } = key;

        public long Bytes { get; } = bytes;
    }

    /// <summary>One caller's clips: completes when all have run, or fails, expires or is cancelled as a whole.</summary>
    private sealed class Request : IDisposable
    {
        private readonly TaskCompletionSource<BatchResult> _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
        // Cancelled when the request ends without a result; never disposed (no timer, no wait handle).
        private readonly CancellationTokenSource _ended = new();
        private readonly CancellationTokenSource? _deadline;
        private readonly TimeSpan _timeout;
        private readonly float[][] _embeddings;
        private readonly Stopwatch _queued = Stopwatch.StartNew();
        private readonly CancellationTokenRegistration _onCancel;
        private readonly CancellationTokenRegistration _onDeadline;
        private readonly Func<ClipWork, bool> _unqueue;
        private readonly ClipWork?[] _works;
        private int _remaining;
        private long _inferenceTicks;
        private long _firstStartTicks = -1;
        private long _lastBatch;

        public Request(int clips, TimeSpan timeout, Func<ClipWork, bool> unqueue, CancellationToken cancellationToken)
        {
            _unqueue = unqueue;
            _works = new ClipWork?[clips];
            _embeddings = new float[clips][];
            _remaining = clips;
            _timeout = timeout;
            _onCancel = cancellationToken.UnsafeRegister(static (state, token) => ((Request)state!).End(new OperationCanceledException(token)), this);
            if (timeout != Timeout.InfiniteTimeSpan)
            {
                _deadline = new CancellationTokenSource(timeout);
                _onDeadline = _deadline.Token.UnsafeRegister(static state => ((Request)state!).End(null), this);
            }
        }

        public Task<BatchResult> Task => _done.Task;

        public bool IsDone => _done.Task.IsCompleted;

        /// <summary>Cancelled once the request has failed, expired or been cancelled.</summary>
        public CancellationToken Ended => _ended.Token;

        /// <summary>Called by the single worker, batch after batch: inference time counts once per batch.</summary>
        public void Complete(int index, float[] embedding, long batch, TimeSpan inference)
        {
            _embeddings[index] = embedding;
            Interlocked.CompareExchange(ref _firstStartTicks, (_queued.Elapsed - inference).Ticks, -1);
            if (Interlocked.Exchange(ref _lastBatch, batch) != batch)
            {
                Interlocked.Add(ref _inferenceTicks, inference.Ticks);
            }

            if (Interlocked.Decrement(ref _remaining) == 0
                && _done.TrySetResult(new BatchResult(_embeddings, TimeSpan.FromTicks(Interlocked.Read(ref _firstStartTicks)), TimeSpan.FromTicks(Interlocked.Read(ref _inferenceTicks)))))
            {
                Dispose();
            }
        }

        public void Fail(Exception error) => End(error);

        /// <summary>Remembers a queued clip, so that ending the request releases its queue space at once.</summary>
        public void Track(ClipWork work)
        {
            Volatile.Write(ref _works[work.Index], work);
            if (IsDone)
            {
                _unqueue(work); // ended before it was tracked
            }
        }

        /// <summary>Ends the request with <paramref name="error"/>: cancelled for an <see cref="OperationCanceledException"/>, timed out for null.</summary>
        private void End(Exception? error)
        {
            bool ended = error switch
            {
                null => _done.TrySetException(new DeadlineExceededException("Inference", _timeout)),
                OperationCanceledException cancelled => _done.TrySetCanceled(cancelled.CancellationToken),
                _ => _done.TrySetException(error),
            };
            if (ended)
            {
                Dispose();
                _ended.Cancel();
                for (int i = 0; i < _works.Length; i++)
                {
                    if (Volatile.Read(ref _works[i]) is { } queued && _unqueue(queued))
                    {
                        queued.Clip = null; // never admitted now: the worker will skip it
                    }
                }
            }
        }

        /// <summary>Ends the registrations and the deadline's timer; <see cref="Ended"/> stays usable.</summary>
        public void Dispose()
        {
            _onCancel.Dispose();
            _onDeadline.Dispose();
            // A fired deadline has nothing left to stop; otherwise stop its timer.
            if (_deadline is { IsCancellationRequested: false })
            {
                _deadline.Dispose();
            }
        }
    }
}
