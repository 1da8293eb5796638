using System.Diagnostics;

namespace CvrlServe.Core.Storage;

/// <summary>
/// An exclusive lock that every process opening the same lock file shares: the file is opened with
/// <see cref="FileShare.None"/>, which .NET turns into <c>flock(LOCK_EX)</c> on Unix (over NFS the kernel maps
/// it to the server's locks, so replicas on other nodes see it too) and into a sharing mode on Windows. A
/// process that dies releases its lock with its handles. Within one process, waiters queue on a semaphore
/// rather than spinning on the file. The lock file is created on first use and never deleted: deleting a
/// lock file while someone holds it would let a newcomer lock a fresh file of the same name beside them.
/// Hold it for file-system steps (renames, deletes, small writes), never around slow work.
/// <para>
/// Guarantees as far as the file system's locks go: a volume whose locks are local to one node (some SMB
/// mounts) serializes only the processes on that node; <c>DOTNET_SYSTEM_IO_DISABLEFILELOCKING</c> turns the
/// cross-process part off altogether.
/// </para>
/// </summary>
[System.Diagnostics.CodeAnalysis.SuppressMessage("Design", "CA1001", Justification = "The semaphore's wait handle is never created, so it holds nothing to dispose; the lock lives as long as its store.")]
public sealed class FileLock
{
    private readonly SemaphoreSlim _local = new(1, 1);

    public FileLock(string path)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(path);
        Path = System.IO.Path.GetFullPath(path);
    }

    public string Path { get; }

    /// <summary>How long <see cref="AcquireAsync"/> waits before giving up with <see cref="OverloadedException"/>.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Waits for the lock and returns it; disposing the result releases it. Creates the lock file's folder
    /// if needed. Throws <see cref="OverloadedException"/> when another holder keeps it past
    /// <see cref="Timeout"/> (the detail names the file).
    /// </summary>
    public async Task<IDisposable> AcquireAsync(CancellationToken cancellationToken = default)
    {
        var clock = Stopwatch.StartNew();
        if (!await _local.WaitAsync(Timeout, cancellationToken).ConfigureAwait(false))
        {
            throw Busy();
        }

        try
        {
            var wait = TimeSpan.FromMilliseconds(1);
            while (true)
            {
                try
                {
                    var handle = new FileStream(Path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None, bufferSize: 1);
                    return new Held(this, handle);
                }
                catch (DirectoryNotFoundException)
                {
                    Directory.CreateDirectory(System.IO.Path.GetDirectoryName(Path)!);
                }
                catch (IOException) when (clock.Elapsed < Timeout)
                {
                    // Held by another process (.NET reports the sharing violation as a plain IOException).
                    await Task.Delay(wait, cancellationToken).ConfigureAwait(false);
                    wait = TimeSpan.FromMilliseconds(Math.Min(50, wait.TotalMilliseconds * 2));
                }
                catch (IOException e)
                {
                    throw Busy(e);
                }
            }
        }
        catch
        {
            _local.Release();
            throw;
        }
    }

    private OverloadedException Busy(Exception? inner = null) =>
        new("a shared file is locked by another process", TimeSpan.FromSeconds(1), $"lock '{Path}' not acquired within {Timeout}{(inner is null ? "" : $": {inner.Message}")}");

    private sealed class Held(FileLock owner, FileStream handle) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
            {
                handle.Dispose();
                owner._local.Release();
            }
        }
    }
}
