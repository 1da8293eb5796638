using System.Globalization;
using System.Text.Json;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Library;
using Microsoft.Extensions.Logging;

namespace CvrlServe.Api.Tests.Jobs;

/// <summary>The job store's contract, run against SQLite and a real PostgreSQL server (see the subclasses at the end).</summary>
public abstract partial class JobStoreTests : IAsyncLifetime
{
    private readonly ManualTime _time = new(new DateTimeOffset(2025, 1, 1, 12, 0, 0, TimeSpan.Zero));
    private LibraryDatabase? _database;

    private static readonly TimeSpan Lease = TimeSpan.FromSeconds(30);

    /// <summary>A new, empty database of the kind under test.</summary>
    protected abstract Task<LibraryDatabase> NewDatabaseAsync();

    public async Task InitializeAsync()
    {
        _database = await NewDatabaseAsync();
        await _database.MigrateAsync(CancellationToken.None);
    }

    public virtual async Task DisposeAsync() => await _database!.DisposeAsync();

    /// <summary>A store on the test's database: each call a new instance, as another replica (or a restart) would be.</summary>
    private JobStore NewStore(ILogger<JobStore>? logger = null) => new(_database!, logger, _time);

    [Fact]
    public async Task CreateAsync_NewJob_QueuedAndStoredUnderItsId()
    {
        var store = NewStore();

        var job = await store.CreateAsync("probe-training", "alice", CancellationToken.None);

        Assert.True(JobStore.IsValidId(job.Id));
        Assert.Equal((JobState.Queued, 0d, "probe-training", "alice"), (job.State, job.Progress, job.Kind, job.Owner));
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
        var before = await store.GetAsync(job.Id, CancellationToken.None);
        bool called = false;

        var error = await Assert.ThrowsAsync<JobFinishedException>(() => store.UpdateAsync(job.Id, j =>
        {
            called = true;
            return j with { State = JobState.Running };
        }, CancellationToken.None));

        Assert.False(called);
        Assert.Equal(final, error.Job.State);
        Assert.Contains("can no longer change", error.Message, StringComparison.Ordinal);
        Assert.Equal(before, await store.GetAsync(job.Id, CancellationToken.None));
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
    [InlineData("' OR '1'='1")]
    public async Task GetAndUpdate_InvalidId_NullAndNothingTouched(string id)
    {
        var store = NewStore();
        var job = await store.CreateAsync("embed", null, CancellationToken.None);

        Assert.Null(await store.GetAsync(id, CancellationToken.None));
        await Assert.ThrowsAsync<JobNotFoundException>(() => store.UpdateAsync(id, j => j with { State = JobState.Running }, CancellationToken.None));
        Assert.Equal([job], await store.ListAsync(10, CancellationToken.None));
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

        Assert.Equal([ids[3], ids[2], ids[1]], (await store.ListAsync(3, CancellationToken.None)).Select(j => j.Id));
        Assert.Equal(4, (await store.ListAsync(100, CancellationToken.None)).Count);
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
