using CvrlServe.Api.Library;
using CvrlServe.Api.Tests.Jobs;

namespace CvrlServe.Api.Tests.Library;

/// <summary>The video store's contract, run against SQLite and against a real PostgreSQL server.</summary>
public abstract class VideoStoreContractTests : IAsyncLifetime
{
    private readonly List<LibraryDatabase> _databases = [];

    protected abstract Task<LibraryDatabase> NewDatabaseAsync();

    /// <summary>Another handle on the same database, as a second replica would open it.</summary>
    protected abstract LibraryDatabase SameDatabase();

    public Task InitializeAsync() => Task.CompletedTask;

    public async Task DisposeAsync()
    {
        foreach (var database in _databases)
        {
            await database.DisposeAsync();
        }
    }

    private async Task<VideoStore> NewStoreAsync()
    {
        var database = Track(await NewDatabaseAsync());
        await database.MigrateAsync(CancellationToken.None);
        return new VideoStore(database);
    }

    protected LibraryDatabase Track(LibraryDatabase database)
    {
        _databases.Add(database);
        return database;
    }

    [Fact]
    public async Task AddAsync_NewVideo_ReadBackExactly()
    {
        var store = await NewStoreAsync();
        var video = Video("alice", seed: 1, tags: ["cats", "2024"]);

        var (entry, created) = await store.AddAsync(video, CancellationToken.None);

        Assert.True(created);
        Assert.True(VideoStore.IsValidId(entry.Id));
        var read = await store.GetAsync(entry.Id, "alice", CancellationToken.None);
        Assert.NotNull(read);
        Assert.Equal((video.Sha256, video.ModelId, video.Name, video.Bytes, video.DurationSeconds, 3, 2, 4), (read.Sha256, read.ModelId, read.Name, read.Bytes, read.DurationSeconds, read.ClipCount, read.Crops, read.Dimension));
        Assert.Equal(video.Tags.Order(), read.Tags.Order());
        Assert.Equal(video.Embedding, read.Embedding);
        var clips = await store.GetClipsAsync(entry.Id, CancellationToken.None);
        Assert.Equal(video.Clips.Select(c => (c.Clip, c.Start, c.End)), clips.Select(c => (c.Clip, c.Start, c.End)));
        for (int c = 0; c < clips.Count; c++)
        {
            Assert.Equal(video.Clips[c].Views.Length, clips[c].Views.Length);
            for (int v = 0; v < clips[c].Views.Length; v++)
            {
                Assert.Equal(video.Clips[c].Views[v], clips[c].Views[v]);
            }
        }
    }

    [Fact]
    public async Task AddAsync_SameContentAndModelTwice_OneEntryReturnedBothTimes()
    {
        var store = await NewStoreAsync();

        var (first, created) = await store.AddAsync(Video("alice", seed: 1), CancellationToken.None);
        var (second, createdAgain) = await store.AddAsync(Video("alice", seed: 1) with { Name = "renamed" }, CancellationToken.None);

        Assert.True(created);
        Assert.False(createdAgain);
        Assert.Equal(first.Id, second.Id);
        Assert.Equal(first.Name, second.Name);
        Assert.Equal(1, (await store.ListAsync(null, null, null, 1, 10, CancellationToken.None)).Total);
    }

    [Fact]
    public async Task AddAsync_SameContentConcurrently_OneEntry()
    {
        var store = await NewStoreAsync();

        var results = await Task.WhenAll(Enumerable.Range(0, 8).Select(_ => Task.Run(() => store.AddAsync(Video("alice", seed: 7), CancellationToken.None))));

        Assert.Single(results, r => r.Created);
        Assert.Single(results.Select(r => r.Entry.Id).Distinct());
        Assert.Equal(1, (await store.ListAsync(null, null, null, 1, 10, CancellationToken.None)).Total);
    }

    [Fact]
    public async Task AddAsync_SameContentOtherOwnerOrModel_SeparateEntriesEachOwnerSeesOnlyItsOwn()
    {
        var store = await NewStoreAsync();

        var (alice, _) = await store.AddAsync(Video("alice", seed: 1), CancellationToken.None);
        var (bob, bobCreated) = await store.AddAsync(Video("bob", seed: 1), CancellationToken.None);
        var (otherModel, otherCreated) = await store.AddAsync(Video("alice", seed: 1) with { ModelId = new string('b', 64) }, CancellationToken.None);

        Assert.True(bobCreated);
        Assert.True(otherCreated);
        Assert.Equal(3, new[] { alice.Id, bob.Id, otherModel.Id }.Distinct().Count());
        Assert.Null(await store.GetAsync(alice.Id, "bob", CancellationToken.None));
        Assert.Null(await store.GetAsync(bob.Id, "alice", CancellationToken.None));
        Assert.NotNull(await store.GetAsync(bob.Id, null, CancellationToken.None));
        Assert.Null(await store.FindAsync("carol", alice.Sha256, alice.ModelId, CancellationToken.None));
        Assert.Equal([bob.Id], (await store.ListAsync("bob", null, null, 1, 10, CancellationToken.None)).Entries.Select(e => e.Id));
    }

    [Fact]
    public async Task ListAsync_Pages_NewestFirstWithTotalsAndTagFilter()
    {
        var time = new ManualTime(new DateTimeOffset(2026, 1, 1, 0, 0, 0, TimeSpan.Zero));
        var database = Track(await NewDatabaseAsync());
        await database.MigrateAsync(CancellationToken.None);
        var store = new VideoStore(database, time);
        var ids = new List<string>();
        for (int i = 0; i < 5; i++)
        {
            time.Now += TimeSpan.FromSeconds(1);
            ids.Add((await store.AddAsync(Video("alice", seed: i, tags: i % 2 == 0 ? ["even"] : ["odd"]), CancellationToken.None)).Entry.Id);
        }

        await store.AddAsync(Video("bob", seed: 99, tags: ["even"]), CancellationToken.None);
        var pages = new List<VideoPage>();
        for (int page = 1; page <= 3; page++)
        {
            pages.Add(await store.ListAsync("alice", null, null, page, 2, CancellationToken.None));
        }

        Assert.All(pages, p => Assert.Equal(5, p.Total));
        Assert.Equal(Enumerable.Reverse(ids), pages.SelectMany(p => p.Entries).Select(e => e.Id));
        var even = await store.ListAsync("alice", "even", null, 1, 10, CancellationToken.None);
        Assert.Equal([ids[4], ids[2], ids[0]], even.Entries.Select(e => e.Id));
        Assert.Equal(4, (await store.ListAsync(null, "even", null, 1, 1, CancellationToken.None)).Total);
        Assert.Empty((await store.ListAsync("alice", null, null, 4, 2, CancellationToken.None)).Entries);
    }

    [Fact]
    public async Task DeleteAsync_Entry_GoneWithItsClipsAndLoggedAfterItsPut()
    {
        var store = await NewStoreAsync();
        var (kept, _) = await store.AddAsync(Video("alice", seed: 2), CancellationToken.None);
        var (entry, _) = await store.AddAsync(Video("alice", seed: 1), CancellationToken.None);

        Assert.True(await store.DeleteAsync(entry.Id, CancellationToken.None));

        Assert.False(await store.DeleteAsync(entry.Id, CancellationToken.None));
        Assert.Null(await store.GetAsync(entry.Id, null, CancellationToken.None));
        Assert.Empty(await store.GetClipsAsync(entry.Id, CancellationToken.None));
        Assert.Equal(3, (await store.GetClipsAsync(kept.Id, CancellationToken.None)).Count);
        var changes = await store.ChangesAfterAsync(0, 100, CancellationToken.None);
        Assert.Equal([(kept.Id, false), (entry.Id, false), (entry.Id, true)], changes.Select(c => (c.VideoId, c.Deleted)));
        Assert.True(changes.Zip(changes.Skip(1)).All(p => p.First.Sequence < p.Second.Sequence));
        Assert.Equal(changes[^1].Sequence, await store.LastChangeAsync(CancellationToken.None));
        Assert.Equal([changes[^1]], await store.ChangesAfterAsync(changes[1].Sequence, 100, CancellationToken.None));
    }

    [Fact]
    public async Task LoadForIndexAsync_AllOrSome_EntriesWithClipEmbeddingsAveragedOverViews()
    {
        var store = await NewStoreAsync();
        var video = Video("alice", seed: 3);
        var (a, _) = await store.AddAsync(video, CancellationToken.None);
        var (b, _) = await store.AddAsync(Video("bob", seed: 4), CancellationToken.None);
        var all = new List<IndexedVideo>();
        var some = new List<IndexedVideo>();

        await store.LoadForIndexAsync(null, all.Add, CancellationToken.None);
        await store.LoadForIndexAsync([a.Id], some.Add, CancellationToken.None);

        Assert.Equal(new[] { a.Id, b.Id }.Order(), all.Select(v => v.Entry.Id).Order());
        var loaded = Assert.Single(some);
        Assert.Equal(3, loaded.Clips.Count);
        // The clip's embedding is its views' mean, normalized: computed here independently.
        var views = video.Clips[1].Views;
        double[] mean = Enumerable.Range(0, 4).Select(i => (double)views.Sum(v => v[i])).ToArray();
        double norm = Math.Sqrt(mean.Sum(x => x * x));
        Assert.All(mean.Zip(loaded.Clips[1].Embedding), p => Assert.Equal(p.First / norm, p.Second, 5));
    }

    [Fact]
    public async Task MigrateAsync_ThreeReplicasAtOnceThenAgain_SchemaAppliedOnce()
    {
        var first = Track(await NewDatabaseAsync());
        LibraryDatabase[] replicas = [first, Track(SameDatabase()), Track(SameDatabase())];

        var applied = await Task.WhenAll(replicas.Select(r => Task.Run(() => r.MigrateAsync(CancellationToken.None))));
        var again = await first.MigrateAsync(CancellationToken.None);

        Assert.Equal([1], applied.SelectMany(a => a));
        Assert.Empty(again);
        Assert.Equal(1, await first.SchemaVersionAsync(CancellationToken.None));
    }

    [Fact]
    public async Task AddAsync_Vectors_StoredAsBinaryNotText()
    {
        var store = await NewStoreAsync();
        var (entry, _) = await store.AddAsync(Video("alice", seed: 1), CancellationToken.None);

        await using var connection = await store.Database.OpenAsync(CancellationToken.None);
        string sql = store.Database.IsPostgres
            ? "SELECT pg_typeof(embedding)::text || ' ' || octet_length(embedding) FROM videos WHERE id = @id"
            : "SELECT typeof(embedding) || ' ' || length(embedding) FROM videos WHERE id = @id";
        string? type = await LibraryDatabase.ScalarAsync<string>(connection, null, sql, CancellationToken.None, ("id", entry.Id));

        Assert.Equal((store.Database.IsPostgres ? "bytea" : "blob") + " 16", type);
    }

    /// <summary>A video of 3 clips × 2 views in 4 dimensions, its vectors made from <paramref name="seed"/>.</summary>
    internal static NewVideo Video(string owner, int seed, string[]? tags = null)
    {
        var random = new Random(seed);
        float[] Unit()
        {
            float[] v = Enumerable.Range(0, 4).Select(_ => (float)random.NextDouble() - 0.5f).ToArray();
            float n = MathF.Sqrt(v.Sum(x => x * x));
            return v.Select(x => x / n).ToArray();
        }

        var clips = Enumerable.Range(0, 3).Select(c => new StoredClip(c, c * 1.5, c * 1.5 + 1.28, [Unit(), Unit()])).ToArray();
        return new NewVideo(owner, Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(BitConverter.GetBytes(seed))), new string('a', 64), "test-model",
            $"video-{seed}.mp4", tags ?? [], 1000 + seed, 4.5, """{"clips":3}""", Unit(), clips);
    }
}

public sealed class SqliteVideoStoreTests : VideoStoreContractTests, IDisposable
{
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    protected override Task<LibraryDatabase> NewDatabaseAsync() => Task.FromResult(LibraryDatabase.Sqlite(_temp.Combine("library.db")));

    protected override LibraryDatabase SameDatabase() => LibraryDatabase.Sqlite(_temp.Combine("library.db"));
}

[Collection(SharedPostgres.Name)]
public sealed class PostgresVideoStoreTests(PostgresServer server) : VideoStoreContractTests
{
    private string? _connectionString;

    protected override async Task<LibraryDatabase> NewDatabaseAsync()
    {
        _connectionString = await server.CreateDatabaseAsync();
        return LibraryDatabase.Postgres(_connectionString);
    }

    protected override LibraryDatabase SameDatabase() => LibraryDatabase.Postgres(_connectionString!);
}
