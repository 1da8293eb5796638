namespace CvrlServe.Core.Video;

/// <summary>
/// A process-wide budget of bytes that decoded video may hold at once (frames, views, the float tensors
/// made from them). A request reserves what it will need before it allocates anything, and before it
/// waits for an ffmpeg slot; requests that do not fit wait in a bounded first-come-first-served queue,
/// and beyond that queue are refused as overloaded. A request larger than the whole budget is refused
/// as a limit. Thread-safe.
/// </summary>
public sealed class MemoryBudget
{
    private readonly object _lock = new();
    private readonly LinkedList<Waiter> _waiting = new();
    private long _inUse;
    private long _peak;

    public MemoryBudget(long capacityBytes, int maxWaiting)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacityBytes, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxWaiting);
        CapacityBytes = capacityBytes;
        MaxWaiting = maxWaiting;
    }

    public long CapacityBytes { get; }

    /// <summary>Requests that may wait for room; one more is refused with <see cref="OverloadedException"/>.</summary>
    public int MaxWaiting { get; }

    /// <summary>Bytes reserved now.</summary>
    public long InUseBytes
    {
        get
        {
            lock (_lock)
            {
                return _inUse;
            }
        }
    }

    /// <summary>Most bytes ever reserved at once.</summary>
    public long PeakBytes
    {
        get
        {
            lock (_lock)
            {
                return _peak;
            }
        }
    }

    /// <summary>Requests waiting for room now.</summary>
    public int Waiting
    {
        get
        {
            lock (_lock)
            {
                return _waiting.Count;
            }
        }
    }

    /// <summary>Reserves <paramref name="bytes"/>, waiting (in order of arrival) until they fit.</summary>
    public async Task<MemoryReservation> ReserveAsync(long bytes, CancellationToken cancellationToken = default)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        if (bytes > CapacityBytes)
        {
            throw new LimitExceededException(Limit.DecodedBytes, bytes, CapacityBytes, "larger than the whole decoded-memory budget");
        }

        Waiter waiter;
        LinkedListNode<Waiter> node;
        lock (_lock)
        {
            if (_waiting.Count == 0 && _inUse + bytes <= CapacityBytes)
            {
                Take(bytes);
                return new MemoryReservation(this, bytes);
            }

            if (_waiting.Count >= MaxWaiting)
            {
                throw new OverloadedException($"{_waiting.Count} requests are waiting for decode memory", TimeSpan.FromSeconds(2),
                    $"decoded-memory budget {_inUse}/{CapacityBytes} bytes in use; {bytes} asked");
            }

            waiter = new Waiter(bytes);
            node = _waiting.AddLast(waiter);
        }

        using (cancellationToken.Register(() => Cancel(node, cancellationToken)))
        {
            await waiter.Granted.Task.ConfigureAwait(false);
        }

        return new MemoryReservation(this, bytes);
    }

    internal void Release(long bytes)
    {
        lock (_lock)
        {
            _inUse -= bytes;
            // Grant in order of arrival: the head waits until it fits, so a large request is not starved.
            while (_waiting.First is { } head && _inUse + head.Value.Bytes <= CapacityBytes)
            {
                _waiting.RemoveFirst();
                Take(head.Value.Bytes);
                head.Value.Granted.TrySetResult();
            }
        }
    }

    private void Take(long bytes)
    {
        _inUse += bytes;
        _peak = Math.Max(_peak, _inUse);
    }

    private void Cancel(LinkedListNode<Waiter> node, CancellationToken cancellationToken)
    {
        lock (_lock)
        {
            if (node.List is null)
            {
                return; // already granted: the caller releases through its reservation
            }

            _waiting.Remove(node);
        }

        node.Value.Granted.TrySetCanceled(cancellationToken);
        Release(0); // the next in line may fit now
    }

    private sealed class Waiter(long bytes)
    {
        public long Bytes { get; } = bytes;

        public TaskCompletionSource Granted { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);
    }
}

/// <summary>Bytes held in a <see cref="MemoryBudget"/> until disposed (exactly once).</summary>
public sealed class MemoryReservation : IDisposable
{
    private MemoryBudget? _budget;

    internal MemoryReservation(MemoryBudget budget, long bytes)
    {
        _budget = budget;
        Bytes = bytes;
    }

    public long Bytes { get; }

    public void Dispose() => Interlocked.Exchange(ref _budget, null)?.Release(Bytes);
}
