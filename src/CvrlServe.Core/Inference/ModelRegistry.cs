using System.Collections.Concurrent;

namespace CvrlServe.Core.Inference;

/// <summary>What the registry knows about one model folder.</summary>
/// <param name="Ready">A session is loaded (warm) and serving.</param>
/// <param name="Error">Why the newest version of the folder could not be loaded, if it could not.</param>
public sealed record ModelStatus(string Name, bool Ready, bool IsDefault, string? Provider, string? EncoderSha256, int? Dimension, string? Error, DateTimeOffset? LoadedAt);

/// <summary>
/// Every encoder under the models folder (one subfolder each, with encoder.onnx and encoder.json). Watches
/// the folder: a changed model is loaded beside the old one and swapped in atomically; requests in
/// flight finish on the old session. A model that fails to load is reported in its status and does not
/// affect the others; if an older version of it was serving, that one keeps serving. Changes under a
/// model's <c>probes/</c> folder, and hidden staging folders, are ignored.
/// </summary>
public sealed class ModelRegistry : IDisposable
{
    private readonly string _folder;
    private readonly EncoderSessionOptions _options;
    private readonly string? _defaultName;
    private readonly ExecutionProviders.CudaAppender? _appendCuda;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Timer> _pending = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _loading = new(1, 1);
    private FileSystemWatcher? _watcher;

    public ModelRegistry(string folder, EncoderSessionOptions options, string? defaultModel = null, ExecutionProviders.CudaAppender? appendCuda = null)
    {
        _folder = Path.GetFullPath(folder);
        _options = options;
        _defaultName = defaultModel;
        _appendCuda = appendCuda;
    }

    /// <summary>How long a folder must be quiet before it is reloaded (copies arrive file by file).</summary>
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>Raised after every load attempt (for logs and tests).</summary>
    public event Action<ModelStatus>? Changed;

    /// <summary>Loads every model folder now, then watches for changes.</summary>
    public void Start()
    {
        Directory.CreateDirectory(_folder);
        foreach (string dir in Directory.GetDirectories(_folder).Order(StringComparer.Ordinal))
        {
            Reload(Path.GetFileName(dir));
        }

        _watcher = new FileSystemWatcher(_folder) { IncludeSubdirectories = true, NotifyFilter = NotifyFilters.FileName | NotifyFilters.DirectoryName | NotifyFilters.LastWrite | NotifyFilters.Size };
        _watcher.Changed += (_, e) => OnChange(e.FullPath);
        _watcher.Created += (_, e) => OnChange(e.FullPath);
        _watcher.Deleted += (_, e) => OnChange(e.FullPath);
        _watcher.Renamed += (_, e) =>
        {
            OnChange(e.OldFullPath);
            OnChange(e.FullPath);
        };
        _watcher.EnableRaisingEvents = true;
    }

    public IReadOnlyList<ModelStatus> List() => _entries.Values.Select(Status).OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();

    /// <summary>The default model's name: the configured one, else the only or first ready model.</summary>
    public string? DefaultName => _defaultName ?? _entries.Values.Where(e => e.Model is not null).Select(e => e.Name).Order(StringComparer.Ordinal).FirstOrDefault();

    /// <summary>A lease on a ready model (the default when <paramref name="name"/> is null).</summary>
    public EncoderModel.Lease Acquire(string? name = null)
    {
        string? wanted = name ?? DefaultName;
        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (wanted is null || !_entries.TryGetValue(wanted, out var entry) || Volatile.Read(ref entry.Model) is not { } model)
            {
                throw new ModelNotFoundException(wanted ?? "(default)", _entries.Values.Where(e => e.Model is not null).Select(e => e.Name));
            }

            if (model.TryAcquire() is { } lease)
            {
                return lease;
            }
        }

        throw new ModelNotFoundException(wanted!, []);
    }

    /// <summary>Loads (or unloads) one model folder now and swaps it in.</summary>
    public void Reload(string name)
    {
        _loading.Wait();
        try
        {
            string dir = Path.Combine(_folder, name);
            var entry = _entries.GetOrAdd(name, n => new Entry(n));
            if (!Directory.Exists(dir) || !File.Exists(Path.Combine(dir, EncoderManifest.FileName)))
            {
                if (Directory.Exists(dir))
                {
                    entry.Error = $"{EncoderManifest.FileName} is missing.";
                }
                else
                {
                    _entries.TryRemove(name, out _);
                }

                Interlocked.Exchange(ref entry.Model, null)?.Retire();
                Changed?.Invoke(Status(entry));
                return;
            }

            try
            {
                var fresh = EncoderModel.Load(dir, _options, _appendCuda);
                Interlocked.Exchange(ref entry.Model, fresh)?.Retire();
                entry.Error = null;
                entry.LoadedAt = DateTimeOffset.UtcNow;
            }
            catch (ModelLoadException e)
            {
                entry.Error = e.Message;
            }

            Changed?.Invoke(Status(entry));
        }
        finally
        {
            _loading.Release();
        }
    }

    public void Dispose()
    {
        _watcher?.Dispose();
        foreach (var timer in _pending.Values)
        {
            timer.Dispose();
        }

        foreach (var entry in _entries.Values)
        {
            Interlocked.Exchange(ref entry.Model, null)?.Retire();
        }

        _loading.Dispose();
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
        if (parts[0].StartsWith('.') || (parts.Length > 1 && parts[1] == "probes"))
        {
            return null;
        }

        return parts[0];
    }

    private void OnChange(string path)
    {
        if (ModelOf(_folder, path) is not { } name)
        {
            return;
        }

        var timer = _pending.GetOrAdd(name, n => new Timer(_ =>
        {
            _pending.TryRemove(n, out var t);
            t?.Dispose();
            Reload(n);
        }));
        timer.Change(Debounce, Timeout.InfiniteTimeSpan);
    }

    private ModelStatus Status(Entry entry)
    {
        var model = Volatile.Read(ref entry.Model);
        return new ModelStatus(entry.Name, model is not null, entry.Name == DefaultName, model?.Session.Provider, model?.Manifest.EncoderSha256,
            model?.Manifest.Output.Dimension, entry.Error, entry.LoadedAt);
    }

    private sealed class Entry(string name)
    {
        public EncoderModel? Model;

        public string Name { get; } = name;

        public string? Error { get; set; }

        public DateTimeOffset? LoadedAt { get; set; }
    }
}
