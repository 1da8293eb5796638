using System.Security.Cryptography;

namespace CvrlServe.Core.Inference;

/// <summary>How a <see cref="ModelRegistry"/> notices changes to the models folder.</summary>
public enum ChangeDetection
{
    /// <summary>File-system events only: immediate, but blind to other nodes' writes on a network volume.</summary>
    Watch,

    /// <summary>A scan every <see cref="ModelRegistry.PollInterval"/>: sees every writer, a poll interval late, no inotify watches used.</summary>
    Poll,

    /// <summary>Events for a fast local reaction, the scan as the safety net (the default).</summary>
    Both,
}

/// <summary>How the registry notices changes: the watcher's events, debounced, and the poll's fingerprints.</summary>
public sealed partial class ModelRegistry
{
    /// <summary>
    /// Scans the models folder once and loads what changed since it was last loaded: new folders, folders
    /// whose fingerprint moved, folders that vanished (forgotten). Returns how many models were loaded or
    /// forgotten. The poll timer calls this; a caller may too (it waits for loads before it). Throws
    /// <see cref="IOException"/> when the models folder cannot be read.
    /// </summary>
    public async Task<int> PollOnceAsync(CancellationToken cancellationToken = default)
    {
        int changed = 0;
        foreach (string name in ModelFolderNames().Union(_entries.Keys, StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray())
        {
            if (_stopping.IsCancellationRequested)
            {
                break;
            }

            if (await ReloadCoreAsync(name, onlyIfChanged: true, cancellationToken))
            {
                changed++;
            }
        }

        return changed;
    }

    /// <summary>The model a changed path belongs to, or null when the change does not concern a model.</summary>
    public static string? ModelOf(string modelsFolder, string path)
    {
        string relative = Path.GetRelativePath(modelsFolder, path);
        if (relative.StartsWith("..", StringComparison.Ordinal) || Path.IsPathRooted(relative) || relative == ".")
        {
            return null;
        }

        string[] parts = relative.Split(Path.DirectorySeparatorChar);
        if (!IsValidName(parts[0]) || (parts.Length > 1 && parts[1] == "probes"))
        {
            return null;
        }

        return parts[0];
    }

    private void OnChange(string path)
    {
        if (ModelOf(_folder, path) is not { } name || _stopping.IsCancellationRequested)
        {
            return;
        }

        // One lock for creating, re-arming and retiring debounce timers: a timer that fires (and is
        // disposed) while a new event re-arms it would otherwise throw ObjectDisposedException on the
        // watcher's thread, which ends the process.
        lock (_pending)
        {
            if (_stopping.IsCancellationRequested)
            {
                return;
            }

            if (!_pending.TryGetValue(name, out var timer))
            {
                _pending[name] = timer = new Timer(_ => Fire(name));
            }

            timer.Change(Debounce, Timeout.InfiniteTimeSpan);
        }
    }

    private void Fire(string name)
    {
        lock (_pending)
        {
            if (_pending.TryRemove(name, out var timer))
            {
                timer.Dispose();
            }
        }

        ReloadInBackground(name);
    }

    /// <summary>
    /// A watcher-triggered reload, skipped when the folder's fingerprint has not moved since its last load (a
    /// poll may have loaded it already): tracked so disposal waits for it, its failure reported in the
    /// model's status.
    /// </summary>
    private void ReloadInBackground(string name)
    {
        if (_stopping.IsCancellationRequested)
        {
            return;
        }

        Track(Task.Run(async () =>
        {
            try
            {
                await ReloadCoreAsync(name, onlyIfChanged: true, CancellationToken.None);
            }
            catch (Exception e) when (_stopping.IsCancellationRequested && e is OperationCanceledException or ModelNotReadyException)
            {
                // Stopping: the model is about to retire anyway.
            }
            catch (Exception e)
            {
                if (_entries.TryGetValue(name, out var entry))
                {
                    entry.Error = $"Model '{name}' could not be reloaded ({e.GetType().Name}).";
                }
            }
        }));
    }

    /// <summary>A timer-triggered poll, skipped while the previous one still runs (slow loads, a slow volume).</summary>
    private void PollInBackground()
    {
        if (_stopping.IsCancellationRequested || Interlocked.CompareExchange(ref _polling, 1, 0) != 0)
        {
            return;
        }

        Track(Task.Run(async () =>
        {
            try
            {
                await PollOnceAsync(_stopping.Token);
            }
            catch (Exception e) when (e is OperationCanceledException or ModelNotReadyException && _stopping.IsCancellationRequested)
            {
                // Stopping.
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The folder could not be read this time (a volume hiccup): models keep serving, the next poll tries again.
            }
            finally
            {
                Volatile.Write(ref _polling, 0);
            }
        }));
    }

    private void Track(Task task)
    {
        _background.TryAdd(task, 0);
        _ = task.ContinueWith(t => _background.TryRemove(t, out _), CancellationToken.None, TaskContinuationOptions.ExecuteSynchronously, TaskScheduler.Default);
    }

    private string[] ModelFolderNames() =>
        Directory.GetDirectories(_folder).Select(Path.GetFileName).OfType<string>().Where(IsValidName).Order(StringComparer.Ordinal).ToArray();

    /// <summary>Runs with <see cref="_loading"/> held: whether a load would see other files than the last one did.</summary>
    private bool HasChanged(string name)
    {
        if (!_entries.TryGetValue(name, out var entry))
        {
            return Directory.Exists(Path.Combine(_folder, name));
        }

        return entry.Fingerprint != Fingerprint(name);
    }

    /// <summary>
    /// What polling compares: whether the folder exists, length and modification time of both files, and a
    /// hash of the manifest's bytes (so even a copy that keeps sizes and times, as <c>cp -p</c> or tar do,
    /// is told apart). Unreadable files give a fixed marker, so a broken folder is not reloaded every poll.
    /// </summary>
    private FolderFingerprint? Fingerprint(string name)
    {
        string dir = Path.Combine(_folder, name);
        if (!Directory.Exists(dir))
        {
            return null;
        }

        try
        {
            var onnx = new FileInfo(Path.Combine(dir, EncoderManifest.ModelFileName));
            var json = new FileInfo(Path.Combine(dir, EncoderManifest.FileName));
            string manifestHash = json.Exists ? Convert.ToHexString(SHA256.HashData(File.ReadAllBytes(json.FullName))) : "";
            return new FolderFingerprint(
                onnx.Exists ? onnx.Length : -1, onnx.Exists ? onnx.LastWriteTimeUtc.Ticks : 0,
                json.Exists ? json.Length : -1, json.Exists ? json.LastWriteTimeUtc.Ticks : 0, manifestHash);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return new FolderFingerprint(-1, 0, -1, 0, "unreadable");
        }
    }

    private readonly record struct FolderFingerprint(long OnnxLength, long OnnxTicks, long ManifestLength, long ManifestTicks, string ManifestSha256);
}
