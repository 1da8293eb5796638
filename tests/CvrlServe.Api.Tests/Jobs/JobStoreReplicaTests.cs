using System.Globalization;
using CvrlServe.Api.Jobs;

namespace CvrlServe.Api.Tests.Jobs;

/// <summary>Several stores on one folder, as replicas on one volume: each its own instance, no lock shared in memory.</summary>
public sealed partial class JobStoreTests
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
    public async Task UpdateAsync_TwoStoresOnOneFolder_ConcurrentIncrementsNoneLost()
    {
        var stores = new[] { NewStore(), NewStore() };
        var job = await stores[0].CreateAsync("embed", null, CancellationToken.None);

        await Task.WhenAll(Enumerable.Range(0, 30).Select(i => Task.Run(() => stores[i % 2].UpdateAsync(job.Id, j =>
            j with { Message = (int.Parse(j.Message ?? "0", CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture) }, CancellationToken.None))));

        Assert.Equal("30", (await NewStore().GetAsync(job.Id, CancellationToken.None))!.Message);
        Assert.Empty(Directory.GetFiles(Folder, "*.tmp"));
    }

    [Fact]
    public async Task RecoverAsync_RecordFromBeforeHeartbeats_ItsUpdateTimeStandsIn()
    {
        var store = NewStore();
        string Record(string id, DateTimeOffset updated) =>
            $$"""{"id":"{{id}}","kind":"embed","state":"running","progress":0.5,"message":null,"createdUtc":"{{updated:O}}","updatedUtc":"{{updated:O}}","owner":null,"result":null,"error":null}""";
        string stale = Guid.NewGuid().ToString("N");
        string fresh = Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(Path.Combine(Folder, stale + ".json"), Record(stale, _time.Now - Lease - TimeSpan.FromSeconds(1)));
        await File.WriteAllTextAsync(Path.Combine(Folder, fresh + ".json"), Record(fresh, _time.Now));

        Assert.Equal(1, await store.RecoverAsync(Lease, CancellationToken.None));

        Assert.Equal(JobState.Failed, (await store.GetAsync(stale, CancellationToken.None))!.State);
        var untouched = (await store.GetAsync(fresh, CancellationToken.None))!;
        Assert.Equal((JobState.Running, null, null), (untouched.State, untouched.Instance, untouched.HeartbeatUtc));
    }
}
