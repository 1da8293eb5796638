namespace CvrlServe.Core.Inference;

/// <summary>
/// A loaded model: its session and micro-batcher, shared by every request that holds a lease on it.
/// When the registry swaps in a new version, this one retires and is disposed once the last lease ends,
/// so requests in flight finish on the session they started on.
/// </summary>
public sealed class EncoderModel
{
    private int _leases;
    private int _retired;

    public EncoderModel(EncoderSession session, MicroBatcher batcher)
    {
        Session = session;
        Batcher = batcher;
    }

    public EncoderSession Session { get; }

    public MicroBatcher Batcher { get; }

    public EncoderManifest Manifest => Session.Manifest;

    /// <summary>The model's name: its folder under the models folder (a renamed copy serves under its new name).</summary>
    public string Name => Path.GetFileName(Session.Folder);

    /// <summary>The model's input clip shape (C, T, H, W) for its serving views; H, W follow the crop.</summary>
    public int[] ClipShape => [3, Manifest.View.Frames, Manifest.View.CropSize, Manifest.View.CropSize];

    public static EncoderModel Load(string folder, EncoderSessionOptions options, ExecutionProviders.CudaAppender? appendCuda = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        var session = EncoderSession.Load(folder, options, appendCuda);
        var batcher = new MicroBatcher(session, options);
        var model = new EncoderModel(session, batcher);
        if (options.WarmUp && session.Manifest.View.CropMode != Video.CropMode.None)
        {
            batcher.WarmUp(model.ClipShape);
        }

        return model;
    }

    /// <summary>Keeps the model alive until the lease is disposed; null once it has retired.</summary>
    public Lease? TryAcquire()
    {
        Interlocked.Increment(ref _leases);
        if (Volatile.Read(ref _retired) == 1)
        {
            Release();
            return null;
        }

        return new Lease(this);
    }

    /// <summary>No new leases; disposed when the last one ends.</summary>
    public void Retire()
    {
        if (Interlocked.Exchange(ref _retired, 1) == 0)
        {
            Interlocked.Increment(ref _leases);
            Release();
        }
    }

    private void Release()
    {
        if (Interlocked.Decrement(ref _leases) == 0 && Volatile.Read(ref _retired) == 1)
        {
            _ = DisposeAsync();
        }
    }

    private async Task DisposeAsync()
    {
        await Batcher.DisposeAsync();
        Session.Dispose();
    }

    /// <summary>A request's hold on a model.</summary>
    public sealed class Lease(EncoderModel model) : IDisposable
    {
        private int _disposed;

        public EncoderModel Model { get; } = model;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _disposed, 1) == 0)
            {
                Model.Release();
            }
        }
    }
}
