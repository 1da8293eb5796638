using System.Globalization;
using System.Text.Json;
using CvrlServe.Api.Jobs;
using Microsoft.Extensions.Logging;

namespace CvrlServe.Api.Tests.Jobs;

public sealed partial class JobStoreTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));

    public void Dispose() => _temp.Dispose();

    private string Folder => _temp.Combine("jobs");

    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    private JobStore NewStore(ILogger<JobStore>? logger = null) => new(Folder, logger, _time);

    [Fact]
    public async Task CreateAsync_NewJob_QueuedAndOnDiskUnderItsId()
    {
        var store = NewStore();

        var job = await store.CreateAsync("probe-training", "alice", CancellationToken.None);

        Assert.True(JobStore.IsValidId(job.Id));
        Assert.Equal((JobState.Queued, 0d, "probe-training", "alice"), (job.State, job.Progress, job.Kind, job.Owner));
        Assert.Equal([job.Id + ".json"], Directory.GetFiles(Folder).Select(Path.GetFileName));
        Assert.Contains("\"state\": \"queued\"", await File.ReadAllTextAsync(Path.Combine(Folder, job.Id + ".json")), StringComparison.Ordinal);
        Assert.Equal(job, await NewStore().GetAsync(job.Id, CancellationToken.None));
    }

    [Fact]
    public async Task UpdateAsync_Change_RecordedWithIdentityKeptAndProgressClamped()
    {
        var store = NewStore();
        var job = await store.CreateAsync("embed", null, CancellationToken.None);
        _time.Now += TimeSpan.FromSeconds(5);

        var updated = await store.UpdateAsync(job.Id, j => j with { Id = "other", Kind = "other", Owner = "mallory", State = JobState.Running, Progress = 1.5, Message = "3 of 4" }, CancellationToken.None);

        Assert.Equal((job.Id, "embed", (string?)null, job.CreatedUtc), (updated.Id, updated.Kind, updated.Owner, updated.CreatedUtc));
        Assert.Equal((JobState.Running, 1d, "3 of 4", _time.Now), (updated.State, updated.Progress, updated.Message, updated.UpdatedUtc));
        Assert.Equal(updated, await store.GetAsync(job.Id, CancellationToken.None));
    }

    [Fact]
    public async Task UpdateAsync_SucceededWithResult_ResultRoundTrips()
    {
        var store = NewStore();
        var job = await store.CreateAsync("embed", null, CancellationToken.None);
        using var result = JsonDocument.Parse("""{"probe":"actions","accuracy":0.75}""");

        await store.UpdateAsync(job.Id, j => j with { State = JobState.Succeeded, Progress = 1, Result = result.RootElement.Clone() }, CancellationToken.None);

        var read = await NewStore().GetAsync(job.Id, CancellationToken.None);
        Assert.Equal(JobState.Succeeded, read!.State);
        Assert.Equal(0.75, read.Result!.Value.GetProperty("accuracy").GetDouble());
    }

    [Theory]
    [InlineData(JobState.Succeeded)]
    [InlineData(JobState.Failed)]
    public async Task UpdateAsync_FinishedJob_RefusedAndRecordUnchanged(JobState final)
    {
        var store = NewStore();
        var job = await store.CreateAsync("embed", null, CancellationToken.None);
        await store.UpdateAsync(job.Id, j => j with { State = final }, CancellationToken.None);
        string path = Path.Combine(Folder, job.Id + ".json");
        byte[] before = await File.ReadAllBytesAsync(path);
        bool called = false;

        var error = await Assert.ThrowsAsync<JobFinishedException>(() => store.UpdateAsync(job.Id, j =>
        {
            called = true;
            return j with { State = JobState.Running };
        }, CancellationToken.None));

        Assert.False(called);
        Assert.Equal(final, error.Job.State);
        Assert.Contains("can no longer change", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, await File.ReadAllBytesAsync(path));
    }

    [Fact]
    public async Task UpdateAsync_UnknownId_NotFound()
    {
        var store = NewStore();

        await Assert.ThrowsAsync<JobNotFoundException>(() => store.UpdateAsync(Guid.NewGuid().ToString("N"), j => j, CancellationToken.None));
    }

    [Theory]
    [InlineData("../outside")]
    [InlineData("ABCDEF0123456789ABCDEF0123456789")]
    [InlineData("0123456789abcdef0123456789abcde")]
    [InlineData("0123456789abcdef0123456789abcdef0")]
    [InlineData("0123456789abcdef0123456789abcdeg")]
    [InlineData("")]
    public async Task GetAndUpdate_InvalidId_NullAndNothingTouched(string id)
    {
        var store = NewStore();
        // A record planted exactly where a store that trusted the id would look: it must stay unseen and unchanged.
        string planted = Path.GetFullPath(Path.Combine(Folder, id + ".json"));
        var now = _time.GetUtcNow();
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(new JobRecord(id, "embed", JobState.Queued, 0, null, now, now, null, null, null), JsonSerializerOptions.Web);
        await File.WriteAllBytesAsync(planted, bytes);

        Assert.Null(await store.GetAsync(id, CancellationToken.None));
        await Assert.ThrowsAsync<JobNotFoundException>(() => store.UpdateAsync(id, j => j with { State = JobState.Running }, CancellationToken.None));
        Assert.Equal(bytes, await File.ReadAllBytesAsync(planted));
        Assert.Empty(store.List(10));
    }

    [Fact]
    public async Task List_SeveralJobs_NewestFirstAndCapped()
    {
        var store = NewStore();
        var ids = new List<string>();
        for (int i = 0; i < 4; i++)
        {
            ids.Add((await store.CreateAsync("embed", null, CancellationToken.None)).Id);
            _time.Now += TimeSpan.FromSeconds(1);
        }

        Assert.Equal([ids[3], ids[2], ids[1]], store.List(3).Select(j => j.Id));
        Assert.Equal(4, store.List(100).Count);
    }

    [Fact]
    public async Task RecoverAsync_HeartbeatsOlderThanTheLease_UnfinishedMarkedInterruptedFinishedUntouched()
    {
        var before = NewStore();
        var queued = await before.CreateAsync("embed", null, CancellationToken.None);
        var running = await before.UpdateAsync((await before.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Running, Progress = 0.4 }, CancellationToken.None);
        var succeeded = await before.UpdateAsync((await before.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        var failed = await before.UpdateAsync((await before.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Failed, Error = new JobError("urn:x", "X", "x") }, CancellationToken.None);
        _time.Now += TimeSpan.FromMinutes(1);

        var after = NewStore();
        int marked = await after.RecoverAsync(Lease, CancellationToken.None);

        Assert.Equal(2, marked);
        foreach (var job in new[] { queued, running })
        {
            var read = await after.GetAsync(job.Id, CancellationToken.None);
            Assert.Equal(JobState.Failed, read!.State);
            Assert.Equal(JobErrors.Interrupted, read.Error!.Type);
            Assert.Contains("submit it again", read.Error.Detail, StringComparison.Ordinal);
            Assert.Equal(_time.Now, read.UpdatedUtc);
        }

        Assert.Equal(0.4, (await after.GetAsync(running.Id, CancellationToken.None))!.Progress);
        Assert.Equal(succeeded, await after.GetAsync(succeeded.Id, CancellationToken.None));
        Assert.Equal(failed, await after.GetAsync(failed.Id, CancellationToken.None));
        Assert.Equal(0, await NewStore().RecoverAsync(Lease, CancellationToken.None));
    }

    [Fact]
    public async Task RecoverAsync_CorruptAndStrayFiles_SkippedLoggedAndLeftoversRemoved()
    {
        var store = NewStore();
        var queued = await store.CreateAsync("embed", null, CancellationToken.None);
        string garbage = Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(Path.Combine(Folder, garbage + ".json"), "{ not json");
        string truncated = Guid.NewGuid().ToString("N");
        await File.WriteAllTextAsync(Path.Combine(Folder, truncated + ".json"), """{"id":"x"}""");
        string leftover = Path.Combine(Folder, queued.Id + ".abc.tmp");
        await File.WriteAllTextAsync(leftover, "half a record");
        File.SetLastWriteTimeUtc(leftover, (_time.Now - TimeSpan.FromHours(1)).UtcDateTime);
        // A live writer's temporary (another replica's, mid-write) is not a leftover.
        string live = Path.Combine(Folder, queued.Id + ".def.tmp");
        await File.WriteAllTextAsync(live, "being written");
        File.SetLastWriteTimeUtc(live, _time.Now.UtcDateTime);
        var logger = new ListLogger<JobStore>();
        _time.Now += Lease + TimeSpan.FromSeconds(1);

        var restarted = NewStore(logger);
        int marked = await restarted.RecoverAsync(Lease, CancellationToken.None);

        Assert.Equal(1, marked);
        Assert.False(File.Exists(leftover));
        Assert.True(File.Exists(live));
        Assert.Equal("{ not json", await File.ReadAllTextAsync(Path.Combine(Folder, garbage + ".json")));
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains(garbage, StringComparison.Ordinal));
        Assert.Contains(logger.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains(truncated, StringComparison.Ordinal));
        Assert.Null(await restarted.GetAsync(garbage, CancellationToken.None));
        Assert.Equal([queued.Id], restarted.List(10).Select(j => j.Id));
    }

    [Fact]
    public async Task UpdateAsync_FiftyConcurrentIncrements_NoneLost()
    {
        var store = NewStore();
        var job = await store.CreateAsync("embed", null, CancellationToken.None);

        var start = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var updates = Enumerable.Range(0, 50).Select(_ => Task.Run(async () =>
        {
            await start.Task;
            await store.UpdateAsync(job.Id, j =>
            {
                // Holding the record a moment widens the window in which an unserialized update would be lost.
                Thread.Sleep(2);
                return j with { Message = (int.Parse(j.Message ?? "0", CultureInfo.InvariantCulture) + 1).ToString(CultureInfo.InvariantCulture) };
            }, CancellationToken.None);
        })).ToArray();
        start.SetResult();
        await Task.WhenAll(updates);

        Assert.Equal("50", (await NewStore().GetAsync(job.Id, CancellationToken.None))!.Message);
        Assert.Single(Directory.GetFiles(Folder, "*.json"));
        Assert.Empty(Directory.GetFiles(Folder, "*.tmp"));
    }

    [Fact]
    public async Task DeleteOlderThanAsync_OldFinishedOnly_Deleted()
    {
        var store = NewStore();
        var oldDone = await store.UpdateAsync((await store.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Succeeded }, CancellationToken.None);
        var oldRunning = await store.UpdateAsync((await store.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Running }, CancellationToken.None);
        _time.Now += TimeSpan.FromDays(2);
        var newDone = await store.UpdateAsync((await store.CreateAsync("embed", null, CancellationToken.None)).Id, j => j with { State = JobState.Failed }, CancellationToken.None);

        int deleted = await store.DeleteOlderThanAsync(TimeSpan.FromDays(1), CancellationToken.None);

        Assert.Equal(1, deleted);
        Assert.Null(await store.GetAsync(oldDone.Id, CancellationToken.None));
        Assert.NotNull(await store.GetAsync(oldRunning.Id, CancellationToken.None));
        Assert.NotNull(await store.GetAsync(newDone.Id, CancellationToken.None));
    }
}
