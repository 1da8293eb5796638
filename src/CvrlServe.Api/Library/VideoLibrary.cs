using System.Collections.Concurrent;
using CvrlServe.Api.Hosting;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Library;

/// <summary>
/// The video library as the service runs it: the <see cref="VideoStore"/> plus one in-memory
/// <see cref="SearchIndex"/> per model id, loaded from the store at start and kept current: this replica's
/// writes go into its index at once, and every <see cref="LibraryOptions.SyncIntervalSeconds"/> the change log
/// is read from the last sequence seen, so writes by other replicas on the same database (PostgreSQL) arrive
/// within an interval. Starting also applies the schema migrations, before any other part of the service
/// touches the store (the jobs live there too).
/// </summary>
public sealed partial class VideoLibrary(VideoStore store, IOptions<CvrlServeOptions> options, ILogger<VideoLibrary> logger) : BackgroundService
{
    private readonly ConcurrentDictionary<string, SearchIndex> _indexes = new(StringComparer.Ordinal);
    private readonly SemaphoreSlim _sync = new(1, 1);
    private long _seen;

    public VideoStore Store => store;

    /// <summary>The change-log sequence this replica's indexes reflect.</summary>
    public long Seen => Interlocked.Read(ref _seen);

    /// <summary>Whether the store was migrated and the indexes loaded.</summary>
    public bool Ready { get; private set; }

    public override async Task StartAsync(CancellationToken cancellationToken)
    {
        var applied = await store.Database.MigrateAsync(cancellationToken);
        // The sequence is read before the entries: a write between the two is loaded and then replayed, never missed.
        long seen = await store.LastChangeAsync(cancellationToken);
        int videos = 0;
        await store.LoadForIndexAsync(null, video =>
        {
            Index(video);
            videos++;
        }, cancellationToken);
        Interlocked.Exchange(ref _seen, seen);
        Ready = true;
        LogStarted(logger, store.Database.Kind, applied.Count == 0 ? "up to date" : $"migrated to {applied[^1]}", videos, _indexes.Count);
        await base.StartAsync(cancellationToken);
    }

    /// <summary>How many videos and clips each embedding space's index holds.</summary>
    public IReadOnlyList<(string ModelId, long Videos, long Clips)> Counts() =>
        _indexes.Select(i => i.Value.Count is var (videos, clips) ? (i.Key, (long)videos, (long)clips) : default).ToArray();

    /// <summary>The index of <paramref name="modelId"/>'s space, or null when nothing in that space is stored.</summary>
    public SearchIndex? IndexOf(string modelId) => _indexes.GetValueOrDefault(modelId);

    /// <summary>Stores the video (or finds the owner's existing entry) and indexes it.</summary>
    public async Task<(VideoEntry Entry, bool Created)> AddAsync(NewVideo video, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(video);
        var (entry, created) = await store.AddAsync(video, cancellationToken);
        if (created)
        {
            Index(new IndexedVideo(entry, video.Clips.Select(c => (c.Clip, c.Start, c.End, c.Embedding())).ToArray()));
        }

        return (entry, created);
    }

    /// <summary>Deletes the entry from the store and this replica's index (other replicas follow at their next sync).</summary>
    public async Task<bool> DeleteAsync(VideoEntry entry, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(entry);
        bool deleted = await store.DeleteAsync(entry.Id, cancellationToken);
        IndexOf(entry.ModelId)?.Remove(entry.Id);
        return deleted;
    }

    /// <summary>Reads every change after <see cref="Seen"/> into the indexes; returns how many changes were applied.</summary>
    public async Task<int> SyncAsync(CancellationToken cancellationToken)
    {
        await _sync.WaitAsync(cancellationToken);
        try
        {
            int applied = 0;
            while (true)
            {
                var changes = await store.ChangesAfterAsync(Seen, 1000, cancellationToken);
                if (changes.Count == 0)
                {
                    return applied;
                }

                // The last change to an entry decides: an entry put then deleted within the batch is removed.
                var last = new Dictionary<string, LibraryChange>(StringComparer.Ordinal);
                foreach (var change in changes)
                {
                    last[change.VideoId] = change;
                }

                var puts = last.Values.Where(c => !c.Deleted).Select(c => c.VideoId).ToArray();
                var loaded = new HashSet<string>(StringComparer.Ordinal);
                await store.LoadForIndexAsync(puts, video =>
                {
                    Index(video);
                    loaded.Add(video.Entry.Id);
                }, cancellationToken);
                foreach (var change in last.Values.Where(c => c.Deleted || !loaded.Contains(c.VideoId)))
                {
                    IndexOf(change.ModelId)?.Remove(change.VideoId);
                }

                Interlocked.Exchange(ref _seen, changes[^1].Sequence);
                applied += changes.Count;
            }
        }
        finally
        {
            _sync.Release();
        }
    }

    public override void Dispose()
    {
        foreach (var index in _indexes.Values)
        {
            index.Dispose();
        }

        _sync.Dispose();
        base.Dispose();
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(options.Value.Library.SyncIntervalSeconds));
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            try
            {
                await SyncAsync(stoppingToken);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                // The database may be away for a moment: the next tick tries again from the same sequence.
                LogSyncFailed(logger, e);
            }
        }
    }

    private void Index(IndexedVideo video)
    {
        var entry = video.Entry;
        var index = _indexes.GetOrAdd(entry.ModelId, _ => new SearchIndex(entry.Dimension));
        index.Upsert(new IndexedEntry(entry.Id, entry.Owner, entry.Name, entry.Tags.ToHashSet(StringComparer.Ordinal)), entry.Embedding, video.Clips);
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Video library on {Store} ({Schema}): {Videos} video(s) in {Spaces} embedding space(s) indexed")]
    private static partial void LogStarted(ILogger logger, string store, string schema, int videos, int spaces);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Reading the library's changes failed; retrying at the next interval")]
    private static partial void LogSyncFailed(ILogger logger, Exception error);
}
