using System.Globalization;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Library;
using CvrlServe.Api.Tests.Library;

namespace CvrlServe.Api.Tests.Jobs;

/// <summary>Several stores on one database, as replicas: each its own instance, no lock shared in memory.</summary>
public abstract partial class JobStoreTests
{
    [Fact]
    public async Task RecoverAsync_AnotherReplicasJob_LeftAloneWhileItsHeartbeatIsFresh_InterruptedOnceItLapses()
    {
        var a = NewStore();
        var b = NewStore();
        Assert.NotEqual(a.Instance, b.Instance);
        var job = await a.CreateAsync("embed", null, CancellationToken.None);
        await a.UpdateAsync(job.Id, j => j with { State = JobState.Running }, CancellationToken.None);

        // A long step: no update for longer than the lease, but heartbeats.
        _time.Now += Lease * 0.8;
        Assert.Equal(1, await a.HeartbeatAsync([job.Id], CancellationToken.None));
        _time.Now += Lease * 0.8;
        Assert.Equal(0, await b.RecoverAsync(Lease, CancellationToken.None));
        Assert.Equal(JobState.Running, (await b.GetAsync(job.Id, CancellationToken.None))!.State);

        // Replica a died: its heartbeat ages past the lease, and b notices.
        _time.Now += Lease * 0.3;
        Assert.Equal(1, await b.RecoverAsync(Lease, CancellationToken.None));
        var failed = (await a.GetAsync(job.Id, CancellationToken.None))!;
        Assert.Equal((JobState.Failed, JobErrors.Interrupted), (failed.State, failed.Error?.Type));
        await Assert.ThrowsAsync<JobFinishedException>(() => a.UpdateAsync(job.Id, j => j with { Progress = 0.9 }, CancellationToken.None));
    }

    [Fact]
    public async Task HeartbeatAsync_OnlyThisInstancesUnfinishedJobs_UpdateTimeKept()
    {
        var a = NewStore();
        var b = NewStore();
        var mine = await a.CreateAsync("embed", null, CancellationToken.None);
        var done = await a.UpdateAsync((await a.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        var theirs = await b.CreateAsync("embed", null, CancellationToken.None);
        var created = _time.Now;
        _time.Now += TimeSpan.FromSeconds(5);

        int stamped = await a.HeartbeatAsync([mine.Id, done.Id, theirs.Id, Guid.NewGuid().ToString("N"), "../x"], CancellationToken.None);

        Assert.Equal(1, stamped);
        var read = (await b.GetAsync(mine.Id, CancellationToken.None))!;
        Assert.Equal((a.Instance, _time.Now, created), (read.Instance, read.HeartbeatUtc, read.UpdatedUtc));
        Assert.Equal(done, await b.GetAsync(done.Id, CancellationToken.None));
        Assert.Equal(theirs, await b.GetAsync(theirs.Id, CancellationToken.None));
    }

    [Fact]
    public async Task UpdateAsync_AnotherInstancesJob_InstanceAndHeartbeatKept()
    {
        var a = NewStore();
        var b = NewStore();
        var job = await a.CreateAsync("embed", null, CancellationToken.None);
        _time.Now += TimeSpan.FromSeconds(5);

        var updated = await b.UpdateAsync(job.Id, j => j with { Message = "seen by b", Instance = b.Instance, HeartbeatUtc = _time.Now }, CancellationToken.None);

        Assert.Equal((a.Instance, job.HeartbeatUtc, _time.Now), (updated.Instance, updated.HeartbeatUtc, updated.UpdatedUtc));
        var own = await a.UpdateAsync(job.Id, j => j with { Message = "a again" }, CancellationToken.None);
        Assert.Equal(_time.Now, own.HeartbeatUtc);
    }

    [Fact]
    public async Task UpdateAsync_TwoStoresOnOneDatabase_ConcurrentIncrementsNoneLost()
    {
        var stores = new[] { NewStore(), NewStore() };
        var job = await stores[0].CreateAsync("embed", null, CancellationToken.None);

        await Task.WhenAll(Enumerable.Range(0, 30).Select(i => Task.Run(() => stores[i % 2].UpdateAsync(job.Id, j =>
            j with { Message = (int.Parse(j.Message ?? "0", CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture) }, CancellationToken.None))));

        Assert.Equal("30", (await NewStore().GetAsync(job.Id, CancellationToken.None))!.Message);
    }

    [Fact]
    public async Task ClaimAsync_StaleJob_TakenOnceByOneReplicaWithItsPayload_FreshOrFinishedNever()
    {
        var dead = NewStore();
        var stale = await dead.CreateAsync("video-ingest", "alice", CancellationToken.None, payload: "{\"sha256\":\"abc\"}");
        await dead.UpdateAsync(stale.Id, j => j with { State = JobState.Running, Progress = 0.5 }, CancellationToken.None);
        var done = await dead.UpdateAsync((await dead.CreateAsync("video-ingest", null, CancellationToken.None)).Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        _time.Now += Lease + TimeSpan.FromSeconds(1);
        var alive = NewStore();
        var fresh = await alive.CreateAsync("video-ingest", null, CancellationToken.None);
        var replicas = new[] { NewStore(), NewStore(), NewStore() };

        Assert.Equal([stale.Id], (await replicas[0].StaleAsync("video-ingest", Lease, CancellationToken.None)).Select(j => j.Id));
        Assert.Empty(await replicas[0].StaleAsync("probe-archive", Lease, CancellationToken.None));
        var claims = await Task.WhenAll(replicas.Select(r => Task.Run(() => r.ClaimAsync(stale.Id, Lease, "taken over", CancellationToken.None))));
        var claimed = Assert.Single(claims, c => c is not null)!;
        Assert.Null(await replicas[0].ClaimAsync(fresh.Id, Lease, "taken over", CancellationToken.None));
        Assert.Null(await replicas[0].ClaimAsync(done.Id, Lease, "taken over", CancellationToken.None));

        var winner = replicas[Array.IndexOf(claims, claimed)];
        Assert.Equal((JobState.Queued, winner.Instance, _time.Now, "taken over", "alice"), (claimed.State, claimed.Instance, claimed.HeartbeatUtc, claimed.Message, claimed.Owner));
        Assert.Equal("{\"sha256\":\"abc\"}", await winner.PayloadAsync(stale.Id, CancellationToken.None));
        // Taken over, it is fresh again: nobody marks it interrupted.
        Assert.Equal(0, await winner.RecoverAsync(Lease, CancellationToken.None));
    }

    [Fact]
    public async Task RecoverAsync_OnlyTheKindsNamed_OthersLeftForTheirRunner()
    {
        var dead = NewStore();
        var archive = await dead.CreateAsync("probe-archive", null, CancellationToken.None);
        var ingest = await dead.CreateAsync("video-ingest", null, CancellationToken.None);
        _time.Now += Lease + TimeSpan.FromSeconds(1);

        Assert.Equal(1, await NewStore().RecoverAsync(Lease, CancellationToken.None, "probe-archive"));

        Assert.Equal(JobState.Failed, (await dead.GetAsync(archive.Id, CancellationToken.None))!.State);
        Assert.Equal(JobState.Queued, (await dead.GetAsync(ingest.Id, CancellationToken.None))!.State);
    }
}

public sealed class SqliteJobStoreTests : JobStoreTests, IDisposable
{
    private readonly TempFolder _temp = new();

    protected override Task<LibraryDatabase> NewDatabaseAsync() => Task.FromResult(LibraryDatabase.Sqlite(_temp.Combine("library.db")));

    public void Dispose() => _temp.Dispose();
}

[Collection(SharedPostgres.Name)]
public sealed class PostgresJobStoreTests(PostgresServer server) : JobStoreTests
{
    protected override async Task<LibraryDatabase> NewDatabaseAsync() => LibraryDatabase.Postgres(await server.CreateDatabaseAsync());
}
