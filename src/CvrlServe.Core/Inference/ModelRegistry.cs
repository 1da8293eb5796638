using System.Collections.Concurrent;

namespace CvrlServe.Core.Inference;

/// <summary>What the registry knows about one model folder.</summary>
/// <param name="Ready">A session is loaded (warm) and serving.</param>
/// <param name="ModelId">The embedding space's identity (<see cref="EncoderManifest.ModelId"/>) of the version serving.</param>
/// <param name="Error">Why the newest version of the folder could not be loaded, if it could not.</param>
public sealed record ModelStatus(string Name, bool Ready, bool IsDefault, string? Provider, string? ModelId, string? EncoderSha256, int? Dimension, string? Error, DateTimeOffset? LoadedAt);

/// <summary>
/// Every encoder under the models folder (one subfolder each, with encoder.onnx and encoder.json). Notices
/// changes by watching the folder, by polling it, or both (<see cref="ChangeDetection"/>): a changed model is
/// loaded beside the old one and swapped in atomically; requests in flight finish on the old session. A
/// model that fails to load is reported in its status and does not affect the others; if an older version
/// of it was serving, that one keeps serving. Changes under a model's <c>probes/</c> folder, hidden staging
/// folders and folders whose names are not model names are ignored. Loads run one at a time, off the
/// caller's, the watcher's and the timer's threads.
/// <para>
/// Polling compares a fingerprint of each model folder (length and modification time of encoder.onnx and
/// encoder.json, and a hash of encoder.json's bytes, which name the ONNX file's SHA-256) with the one taken
/// when the model was last loaded, and loads only folders whose fingerprint changed; new folders are
/// loaded and vanished ones forgotten, as a watcher event would. The load itself verifies the files, so a
/// copy caught half-way fails that load (the old version keeps serving) and the next poll, seeing the
/// fingerprint move again, loads the finished copy.
/// </para>
/// </summary>
public sealed partial class ModelRegistry : IAsyncDisposable
{
    /// <summary>Longest model name.</summary>
    public const int MaxNameLength = 100;

    private readonly string _folder;
    private readonly EncoderSessionOptions _options;
    private readonly string? _defaultName;
    private readonly ExecutionProviders.CudaAppender? _appendCuda;
    private readonly ConcurrentDictionary<string, Entry> _entries = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, Timer> _pending = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<Task, byte> _background = new();
    private readonly List<EncoderModel> _retired = [];
    // Serializes loads; never disposed (it has no wait handle) so a late watcher task cannot hit a disposed one.
    private readonly SemaphoreSlim _loading = new(1, 1);
    // Never disposed either: a late caller may still link to its token.
    private readonly CancellationTokenSource _stopping = new();
    private FileSystemWatcher? _watcher;
    private ITimer? _pollTimer;
    private int _polling;
    private int _disposed;

    public ModelRegistry(string folder, EncoderSessionOptions options, string? defaultModel = null, ExecutionProviders.CudaAppender? appendCuda = null)
    {
        ArgumentNullException.ThrowIfNull(folder);
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (defaultModel is not null)
        {
            ValidateName(defaultModel);
        }

        _folder = Path.GetFullPath(folder);
        _options = options;
        _defaultName = defaultModel;
        _appendCuda = appendCuda;
    }

    /// <summary>How long a folder must be quiet before it is reloaded (copies arrive file by file).</summary>
    public TimeSpan Debounce { get; init; } = TimeSpan.FromMilliseconds(400);

    /// <summary>Watch, poll or both; read by <see cref="StartAsync"/>.</summary>
    public ChangeDetection ChangeDetection { get; init; } = ChangeDetection.Both;

    /// <summary>Time between two scans of the folder when polling (positive).</summary>
    public TimeSpan PollInterval { get; init; } = TimeSpan.FromSeconds(10);

    /// <summary>The clock that drives the poll timer.</summary>
    public TimeProvider TimeProvider { get; init; } = TimeProvider.System;

    /// <summary>Raised after every load attempt (for logs and tests), on the thread that loaded.</summary>
    public event Action<ModelStatus>? Changed;

    /// <summary>The default model's name: the configured one, else the first ready model.</summary>
    public string? DefaultName => _defaultName ?? _entries.Values.Where(e => e.Model is not null).Select(e => e.Name).Order(StringComparer.Ordinal).FirstOrDefault();

    /// <summary>Whether <paramref name="name"/> can name a model: ASCII letters, digits, '-', '_', '.', not starting with '.', at most 100 characters.</summary>
    public static bool IsValidName(string? name) =>
        !string.IsNullOrEmpty(name) && name.Length <= MaxNameLength && name[0] != '.'
        && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>
    /// Loads every model folder (each reported through <see cref="Changed"/> and <see cref="List"/>, failures
    /// included), then watches and/or polls for changes. Every model is known, loading, from the start, so a
    /// request meanwhile is told "not ready" rather than "not found".
    /// </summary>
    public async Task StartAsync(CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(Volatile.Read(ref _disposed) != 0, this);
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(PollInterval, TimeSpan.Zero, nameof(PollInterval));
        Directory.CreateDirectory(_folder);
        string[] names = ModelFolderNames();
        foreach (string name in names)
        {
            _entries.TryAdd(name, new Entry(name));
        }

        foreach (string name in names)
        {
            await ReloadAsync(name, cancellationToken);
        }

        if (ChangeDetection is ChangeDetection.Watch or ChangeDetection.Both)
        {
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

        if (ChangeDetection is ChangeDetection.Poll or ChangeDetection.Both)
        {
            _pollTimer = TimeProvider.CreateTimer(_ => PollInBackground(), null, PollInterval, PollInterval);
        }
    }

    public IReadOnlyList<ModelStatus> List() => _entries.Values.Select(Status).OrderBy(s => s.Name, StringComparer.Ordinal).ToArray();

    /// <summary>
    /// A lease on a ready model (the default when <paramref name="name"/> is null). Throws
    /// <see cref="InvalidRequestException"/> for a name no model can have, <see cref="ModelNotFoundException"/>
    /// for an unknown model, and <see cref="ModelNotReadyException"/> for one that is loading, failed to
    /// load, or is being replaced.
    /// </summary>
    public EncoderModel.Lease Acquire(string? name = null)
    {
        if (name is not null)
        {
            ValidateName(name);
        }

        string? wanted = name ?? DefaultName;
        if (Volatile.Read(ref _disposed) != 0)
        {
            throw new ModelNotReadyException(wanted ?? "(default)", "the registry has stopped.");
        }

        if (wanted is null)
        {
            throw _entries.IsEmpty
                ? new ModelNotFoundException("(default)", [])
                : new ModelNotReadyException("(default)", "no model is ready yet.");
        }

        if (!_entries.TryGetValue(wanted, out var entry))
        {
            throw new ModelNotFoundException(wanted, _entries.Keys.Order(StringComparer.Ordinal));
        }

        for (int attempt = 0; attempt < 3; attempt++)
        {
            if (Volatile.Read(ref entry.Model) is not { } model)
            {
                throw entry.Error is { } error
                    ? new ModelNotReadyException(wanted, "it failed to load.", error)
                    : new ModelNotReadyException(wanted, "it is loading.");
            }

            // Null only when the model retired since it was read: the entry holds its successor by now.
            if (model.TryAcquire() is { } lease)
            {
                return lease;
            }
        }

        throw new ModelNotReadyException(wanted, "it is being replaced.");
    }

    /// <summary>
    /// Loads (or, when its folder is gone, forgets) one model now and swaps it in; waits for loads before it.
    /// A folder that fails to load is reported in the model's status, not thrown. Throws
    /// <see cref="InvalidRequestException"/> for a name no model can have.
    /// </summary>
    public Task ReloadAsync(string name, CancellationToken cancellationToken = default) =>
        ReloadCoreAsync(name, onlyIfChanged: false, cancellationToken);

    /// <summary>Loads <paramref name="name"/> (when <paramref name="onlyIfChanged"/>, only if its fingerprint moved); true when it loaded or forgot it.</summary>
    private async Task<bool> ReloadCoreAsync(string name, bool onlyIfChanged, CancellationToken cancellationToken)
    {
        ValidateName(name);
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _stopping.Token);
        try
        {
            await _loading.WaitAsync(stop.Token);
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ModelNotReadyException(name, "the registry is stopping.");
        }

        try
        {
            if (onlyIfChanged && !HasChanged(name))
            {
                return false;
            }

            await LoadAsync(name, stop.Token);
            return true;
        }
        catch (OperationCanceledException) when (_stopping.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
        {
            throw new ModelNotReadyException(name, "the registry is stopping.");
        }
        finally
        {
            _loading.Release();
        }
    }

    /// <summary>
    /// Stops watching, waits for loads in progress, retires every model and waits until each has disposed
    /// itself (after its last lease ends).
    /// </summary>
    public async ValueTask DisposeAsync()
    {
        if (Interlocked.Exchange(ref _disposed, 1) != 0)
        {
            return;
        }

        await _stopping.CancelAsync();
        _watcher?.Dispose();
        if (_pollTimer is not null)
        {
            await _pollTimer.DisposeAsync();
        }

        Timer[] timers;
        lock (_pending)
        {
            timers = [.. _pending.Values];
            _pending.Clear();
        }

        foreach (var timer in timers)
        {
            await timer.DisposeAsync();
        }

        await Task.WhenAll(_background.Keys);
        // Once held here, no load can start: each checks _stopping after it gets the semaphore.
        await _loading.WaitAsync();
        foreach (var entry in _entries.Values)
        {
            Retire(Interlocked.Exchange(ref entry.Model, null));
        }

        EncoderModel[] retired;
        lock (_retired)
        {
            retired = [.. _retired];
        }

        await Task.WhenAll(retired.Select(m => m.Disposed));
    }

    private static void ValidateName(string name)
    {
        if (!IsValidName(name))
        {
            throw new InvalidRequestException($"Model names are letters, digits, '-', '_' and '.', at most {MaxNameLength} characters, not starting with '.'.");
        }
    }

    /// <summary>Runs with <see cref="_loading"/> held.</summary>
    private async Task LoadAsync(string name, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        string dir = Path.Combine(_folder, name);
        var entry = _entries.GetOrAdd(name, n => new Entry(n));
        // Taken before the files are read: a change landing during the load moves it again for the next poll.
        entry.Fingerprint = Fingerprint(name);
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

            Retire(Interlocked.Exchange(ref entry.Model, null));
            Changed?.Invoke(Status(entry));
            return;
        }

        try
        {
            var fresh = await EncoderModel.LoadAsync(dir, _options, _appendCuda, cancellationToken);
            Retire(Interlocked.Exchange(ref entry.Model, fresh));
            entry.Error = null;
            entry.LoadedAt = DateTimeOffset.UtcNow;
        }
        catch (ModelLoadException e)
        {
            entry.Error = e.Message;
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Whatever else a load throws (out of memory in ONNX Runtime, a bad graph) stays with this
            // model: the others load, the watcher starts, and the status says so without raw text.
            entry.Error = $"Model '{name}' could not be loaded ({e.GetType().Name}).";
        }

        Changed?.Invoke(Status(entry));
    }

    private void Retire(EncoderModel? model)
    {
        if (model is null)
        {
            return;
        }

        lock (_retired)
        {
            _retired.RemoveAll(m => m.Disposed.IsCompletedSuccessfully);
            _retired.Add(model);
        }

        model.Retire();
    }

    private ModelStatus Status(Entry entry)
    {
        var model = Volatile.Read(ref entry.Model);
        return new ModelStatus(entry.Name, model is not null, entry.Name == DefaultName, model?.Session.Provider, model?.Manifest.ModelId,
            model?.Manifest.EncoderSha256, model?.Manifest.Output.Dimension, entry.Error, entry.LoadedAt);
    }

    private sealed class Entry(string name)
    {
        public EncoderModel? Model;

        /// <summary>The folder as the last load saw it; written and read with the registry's load lock held.</summary>
        public FolderFingerprint? Fingerprint;

        public string Name { get; } = name;

        public volatile string? Error;

        public DateTimeOffset? LoadedAt { get; set; }
    }
}
