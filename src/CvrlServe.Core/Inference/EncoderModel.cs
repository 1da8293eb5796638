namespace CvrlServe.Core.Inference;

/// <summary>
/// A loaded model: its session and micro-batcher, shared by every request that holds a lease on it.
/// When the registry swaps in a new version, this one retires: no lease is granted after that, and the
/// model disposes itself (batcher, then native session) exactly once, when the last lease ends. Requests
/// in flight finish on the session they started on. <see cref="Disposed"/> completes when that disposal
/// has run. An owner without a registry (the CLI) holds it with <c>await using</c>.
/// </summary>
public sealed class EncoderModel : IAsyncDisposable
{
    // One state word, changed only by compare-and-swap: the lease count in steps of 2, and the retired bit.
    private const int RetiredBit = 1;
    private const int OneLease = 2;
    private readonly TaskCompletionSource _disposed = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _state;
    private int _disposals;

    public EncoderModel(EncoderSession session, MicroBatcher batcher)
    {
        Session = session;
        Batcher = batcher;
    }

    public EncoderSession Session { get; }

    public MicroBatcher Batcher { get; }

    public EncoderManifest Manifest => Session.Manifest;

    /// <summary>The model's name: its folder under the models folder (a renamed copy serves under its new name).</summary>
    public string Name => Session.Name;

    /// <summary>The model's input clip shape (C, T, H, W) for its serving views; H, W follow the crop.</summary>
    public int[] ClipShape => [3, Manifest.View.Frames, Manifest.View.CropSize, Manifest.View.CropSize];

    /// <summary>Leases held now.</summary>
    public int Leases => Volatile.Read(ref _state) >> 1;

    /// <summary>Whether the model has retired (no new leases).</summary>
    public bool IsRetired => (Volatile.Read(ref _state) & RetiredBit) != 0;

    /// <summary>Completes once the model has released its batcher and native session (after retiring and the last lease).</summary>
    public Task Disposed => _disposed.Task;

    /// <summary>How many times disposal ran: 0 before, 1 after. More would be the bug this type exists to prevent.</summary>
    internal int Disposals => Volatile.Read(ref _disposals);

    /// <summary>
    /// Loads the folder's session off the caller's thread, starts its batcher and, when the options ask,
    /// warms it up. Throws <see cref="ModelLoadException"/> for a folder that cannot serve.
    /// </summary>
    public static Task<EncoderModel> LoadAsync(string folder, EncoderSessionOptions options, ExecutionProviders.CudaAppender? appendCuda = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        return Task.Run(async () =>
        {
            var session = EncoderSession.Load(folder, options, appendCuda);
            var model = new EncoderModel(session, new MicroBatcher(session, options));
            try
            {
                cancellationToken.ThrowIfCancellationRequested();
                if (options.WarmUp && session.Manifest.View.CropMode != Video.CropMode.None)
                {
                    model.Batcher.WarmUp(model.ClipShape);
                }

                return model;
            }
            catch
            {
                await model.DisposeAsync();
                throw;
            }
        }, cancellationToken);
    }

    /// <summary>Keeps the model alive until the lease is disposed; null once it has retired.</summary>
    public Lease? TryAcquire()
    {
        int state = Volatile.Read(ref _state);
        while ((state & RetiredBit) == 0)
        {
            int seen = Interlocked.CompareExchange(ref _state, state + OneLease, state);
            if (seen == state)
            {
                return new Lease(this);
            }

            state = seen;
        }

        return null;
    }

    /// <summary>No new leases from now on; the model disposes itself when the last one ends. Returns whether this call retired it.</summary>
    public bool Retire()
    {
        int state = Volatile.Read(ref _state);
        while ((state & RetiredBit) == 0)
        {
            int seen = Interlocked.CompareExchange(ref _state, state | RetiredBit, state);
            if (seen == state)
            {
                if (state == 0)
                {
                    _ = DisposeCoreAsync();
                }

                return true;
            }

            state = seen;
        }

        return false;
    }

    /// <summary>Retires the model and waits until the last lease has ended and it has disposed itself.</summary>
    public async ValueTask DisposeAsync()
    {
        Retire();
        await Disposed;
    }

    private void Release()
    {
        // The one transition into "retired, no leases" happens once: either here or in Retire.
        if (Interlocked.Add(ref _state, -OneLease) == RetiredBit)
        {
            _ = DisposeCoreAsync();
        }
    }

    /// <summary>Never throws: a failure is reported through <see cref="Disposed"/>.</summary>
    private async Task DisposeCoreAsync()
    {
        Interlocked.Increment(ref _disposals);
        try
        {
            await Batcher.DisposeAsync();
            Session.Dispose();
            _disposed.TrySetResult();
        }
        catch (Exception e)
        {
            _disposed.TrySetException(e);
        }
    }

    /// <summary>A request's hold on a model.</summary>
    public sealed class Lease : IDisposable
    {
        private int _disposed;

        internal Lease(EncoderModel model) => Model = model;

        public EncoderModel Model { get; }

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Model.Release();
            }
        }
    }
}
