using System.Security.Cryptography;
using System.Text.Json;
using CvrlServe.Core.Storage;
using Microsoft.Extensions.Logging.Abstractions;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// Background jobs recorded on disk, one <c>{id}.json</c> per job in <see cref="Folder"/>, so that a restart
/// loses none and every replica sharing the folder answers for every job: each write goes to a temporary
/// file (named with a GUID, so no two writers share one) in the same folder that then replaces the record in
/// one rename, so a reader (or a crash) only ever sees a whole record. Every read-modify-write (updates,
/// heartbeats, recovery, retention) runs under one lock file, <c>.lock</c> in the folder (see
/// <see cref="FileLock"/>), across threads and processes alike: a job finished by one replica is never
/// overwritten by another's stale view of it, and concurrent updates are never lost. Ids are made here (32
/// lower-case hex digits) and an id that is not of that form never becomes a path.
/// <para>
/// Each store has an <see cref="Instance"/> id, new for every process start. A job records the instance that
/// created it; that instance's updates and <see cref="HeartbeatAsync"/> keep its heartbeat fresh, and
/// <see cref="RecoverAsync"/> (run by any replica, at start and periodically) marks failed only the jobs
/// whose heartbeat is older than a lease: a replica starting never interrupts another's live job.
/// </para>
/// </summary>
public sealed partial class JobStore
{
    private const string RecordSuffix = ".json";
    private const string TemporarySuffix = ".tmp";

    /// <summary>A temporary file this old is a dead writer's leftover: a live write takes milliseconds.</summary>
    private static readonly TimeSpan StaleTemporary = TimeSpan.FromMinutes(10);

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private readonly FileLock _lock;
    private readonly System.Collections.Concurrent.ConcurrentDictionary<string, byte> _reportedUnreadable = new(StringComparer.Ordinal);
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Opens (creating it if needed) the folder that holds the job records.</summary>
    public JobStore(string folder, ILogger<JobStore>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(Folder);
        _lock = new FileLock(Path.Combine(Folder, ".lock"));
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    public string Folder { get; }

    /// <summary>This store's process: 16 random hex digits, new for every start.</summary>
    public string Instance { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>True for a string of the form this store issues as an id: exactly 32 lower-case hex digits.</summary>
    public static bool IsValidId(string? id) => id is { Length: 32 } && id.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>
    /// Records a new job, <see cref="JobState.Queued"/> at progress 0, held by this <see cref="Instance"/>, and
    /// returns it once it is on disk.
    /// </summary>
    public async Task<JobRecord> CreateAsync(string kind, string? owner, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        var now = _time.GetUtcNow();
        // A new id: no other writer knows it yet, so no lock is needed.
        var job = new JobRecord(Guid.NewGuid().ToString("N"), kind, JobState.Queued, 0, null, now, now, owner, null, null, Instance, now);
        await WriteAsync(job, cancellationToken).ConfigureAwait(false);
        return job;
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the job as it stands on disk and records the result, with no other
    /// change to the same job in between, from any process sharing the folder (so concurrent updates are
    /// never lost). Whatever <paramref name="change"/> returns, the id, kind, owner, instance and creation
    /// time are kept, the update time is set to now (and the heartbeat too when this instance holds the job)
    /// and progress is clamped to [0, 1]. Throws <see cref="JobNotFoundException"/> for an unknown or
    /// malformed id (or an unreadable record) and <see cref="JobFinishedException"/> when the job has already
    /// succeeded or failed, in which case <paramref name="change"/> is not called. When
    /// <paramref name="change"/> throws, nothing is written.
    /// </summary>
    public async Task<JobRecord> UpdateAsync(string id, Func<JobRecord, JobRecord> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!IsValidId(id))
        {
            throw new JobNotFoundException("malformed job id");
        }

        using (await _lock.AcquireAsync(cancellationToken).ConfigureAwait(false))
        {
            var current = await ReadAsync(id, cancellationToken).ConfigureAwait(false) ?? throw new JobNotFoundException($"no readable record for job {id} in '{Folder}'");
            if (current.IsFinished)
            {
                throw new JobFinishedException(current);
            }

            var next = change(current) ?? throw new InvalidOperationException("The job change returned null.");
            var now = _time.GetUtcNow();
            next = next with
            {
                Id = current.Id,
                Kind = current.Kind,
                Owner = current.Owner,
                CreatedUtc = current.CreatedUtc,
                Instance = current.Instance,
                UpdatedUtc = now,
                HeartbeatUtc = current.Instance == Instance ? now : current.HeartbeatUtc,
                Progress = double.IsNaN(next.Progress) ? current.Progress : Math.Clamp(next.Progress, 0, 1),
            };
            await WriteAsync(next, cancellationToken).ConfigureAwait(false);
            return next;
        }
    }

    /// <summary>
    /// Re-stamps the heartbeat of each of <paramref name="ids"/> that is still queued or running and held by
    /// this <see cref="Instance"/> (its update time stays: nothing about the job changed). Returns how many
    /// were stamped; unknown, finished and other instances' jobs are skipped.
    /// </summary>
    public async Task<int> HeartbeatAsync(IEnumerable<string> ids, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(ids);
        int stamped = 0;
        foreach (string id in ids.Where(IsValidId))
        {
            using (await _lock.AcquireAsync(cancellationToken).ConfigureAwait(false))
            {
                var job = await ReadAsync(id, cancellationToken).ConfigureAwait(false);
                if (job is { IsFinished: false } && job.Instance == Instance)
                {
                    await WriteAsync(job with { HeartbeatUtc = _time.GetUtcNow() }, cancellationToken).ConfigureAwait(false);
                    stamped++;
                }
            }
        }

        return stamped;
    }

    /// <summary>
    /// The job as last recorded, or null when <paramref name="id"/> is not a well-formed id (no path is then
    /// built from it), when no such job exists, or when its record cannot be read (that is logged).
    /// </summary>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        IsValidId(id) ? await ReadAsync(id, cancellationToken).ConfigureAwait(false) : null;

    /// <summary>
    /// Whether job <paramref name="id"/> has a record file, readable or not, written within <paramref name="age"/>:
    /// where <see cref="GetAsync"/> gives nothing, this tells a job that may be live (its heartbeats rewrite the
    /// record) from one that is unknown or whose unreadable record nobody writes any more.
    /// </summary>
    public bool RecordChangedWithin(string id, TimeSpan age)
    {
        var file = IsValidId(id) ? new FileInfo(PathOf(id)) : null;
        return file is { Exists: true } && file.LastWriteTimeUtc > _time.GetUtcNow().UtcDateTime - age;
    }

    /// <summary>Up to <paramref name="max"/> jobs, newest first; unreadable records are skipped (and logged).</summary>
    public IReadOnlyList<JobRecord> List(int max)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        return RecordIds()
            .Select(id => Parse(id, () => File.ReadAllBytes(PathOf(id))))
            .OfType<JobRecord>()
            .OrderByDescending(job => job.CreatedUtc)
            .ThenByDescending(job => job.Id, StringComparer.Ordinal)
            .Take(max)
            .ToArray();
    }

    /// <summary>
    /// Marks failed, with <see cref="JobErrors.Interrupted"/>, every job still queued or running whose
    /// heartbeat (<see cref="JobRecord.LastSeenUtc"/>) is older than <paramref name="lease"/>: the process that
    /// held it is gone, whichever replica it was. Live jobs of other replicas, whose heartbeats are fresh, are
    /// left alone, so any replica may call this at start and periodically. Also removes temporary files a
    /// crashed writer left behind (those older than a few minutes; a live writer's are never touched).
    /// Returns how many jobs were marked. Unreadable records are skipped and logged, never fatal.
    /// </summary>
    public async Task<int> RecoverAsync(TimeSpan lease, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lease, TimeSpan.Zero);
        var now = _time.GetUtcNow();
        foreach (string temporary in Directory.EnumerateFiles(Folder, "*" + TemporarySuffix))
        {
            if (File.GetLastWriteTimeUtc(temporary) < now.UtcDateTime - StaleTemporary)
            {
                TryDelete(temporary);
            }
        }

        int interrupted = 0;
        foreach (string id in RecordIds())
        {
            // Read without the lock first: most records are finished or alive, and need no write.
            if (Parse(id, () => File.ReadAllBytes(PathOf(id))) is not { IsFinished: false } seen || now - seen.LastSeenUtc <= lease)
            {
                continue;
            }

            using (await _lock.AcquireAsync(cancellationToken).ConfigureAwait(false))
            {
                var job = await ReadAsync(id, cancellationToken).ConfigureAwait(false);
                now = _time.GetUtcNow();
                if (job is null || job.IsFinished || now - job.LastSeenUtc <= lease)
                {
                    continue;
                }

                var error = new JobError(JobErrors.Interrupted, "Interrupted", "The service process running the job stopped before the job finished; submit it again.");
                await WriteAsync(job with { State = JobState.Failed, Error = error, Message = error.Detail, UpdatedUtc = now }, cancellationToken).ConfigureAwait(false);
                interrupted++;
            }
        }

        if (interrupted > 0)
        {
            LogInterrupted(_logger, interrupted, lease.TotalSeconds);
        }

        return interrupted;
    }

    /// <summary>
    /// Deletes the records of finished jobs last updated more than <paramref name="age"/> ago and returns how
    /// many went. Queued and running jobs are never deleted; unreadable records are left for a person to see.
    /// </summary>
    public async Task<int> DeleteOlderThanAsync(TimeSpan age, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(age, TimeSpan.Zero);
        var cutoff = _time.GetUtcNow() - age;
        int deleted = 0;
        foreach (string id in RecordIds())
        {
            if (Parse(id, () => File.ReadAllBytes(PathOf(id))) is not { IsFinished: true } seen || seen.UpdatedUtc >= cutoff)
            {
                continue;
            }

            using (await _lock.AcquireAsync(cancellationToken).ConfigureAwait(false))
            {
                if (TryDelete(PathOf(id)))
                {
                    deleted++;
                }
            }
        }

        return deleted;
    }

    private string PathOf(string id) => Path.Combine(Folder, id + RecordSuffix);

    // Only names this store could have written count: anything else in the folder is not a job.
    private string[] RecordIds() =>
        Directory.EnumerateFiles(Folder, "*" + RecordSuffix)
            .Select(Path.GetFileName)
            .Where(name => name is not null && name.EndsWith(RecordSuffix, StringComparison.Ordinal))
            .Select(name => name![..^RecordSuffix.Length])
            .Where(IsValidId)
            .ToArray();

    private async Task<JobRecord?> ReadAsync(string id, CancellationToken cancellationToken)
    {
        byte[]? bytes;
        try
        {
            bytes = await File.ReadAllBytesAsync(PathOf(id), cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return Unreadable(id, e);
        }

        return Parse(id, () => bytes);
    }

    private JobRecord? Parse(string id, Func<byte[]> read)
    {
        try
        {
            var job = JsonSerializer.Deserialize<JobRecord>(read(), Json);
            return job is not null && job.Id == id ? job : throw new JsonException("the record is empty or names another job");
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or JsonException)
        {
            return Unreadable(id, e);
        }
    }

    private JobRecord? Unreadable(string id, Exception error)
    {
        // A record deleted between listing and reading (retention) is simply gone, not a fault. A damaged
        // one is reported once per process, not at every periodic recovery.
        if (error is not FileNotFoundException && _reportedUnreadable.TryAdd(id, 0))
        {
            LogUnreadable(_logger, id, error);
        }

        return null;
    }

    private async Task WriteAsync(JobRecord job, CancellationToken cancellationToken)
    {
        byte[] bytes = JsonSerializer.SerializeToUtf8Bytes(job, Json);
        string temporary = Path.Combine(Folder, $"{job.Id}.{Guid.NewGuid():N}{TemporarySuffix}");
        try
        {
            await using (var stream = new FileStream(temporary, FileMode.CreateNew, FileAccess.Write, FileShare.None, 4096, FileOptions.Asynchronous))
            {
                await stream.WriteAsync(bytes, cancellationToken).ConfigureAwait(false);
                // On disk before the rename, so a power cut cannot leave a renamed but empty record.
                stream.Flush(flushToDisk: true);
            }

            File.Move(temporary, PathOf(job.Id), overwrite: true);
        }
        catch
        {
            TryDelete(temporary);
            throw;
        }
    }

    private bool TryDelete(string path)
    {
        try
        {
            File.Delete(path);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            LogNotDeleted(_logger, Path.GetFileName(path), e);
            return false;
        }
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job record {JobId} could not be read; skipped")]
    private static partial void LogUnreadable(ILogger logger, string jobId, Exception error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Job file {File} could not be deleted")]
    private static partial void LogNotDeleted(ILogger logger, string file, Exception error);

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} job(s) whose process stopped (no heartbeat for {LeaseSeconds} s) were marked failed (interrupted)")]
    private static partial void LogInterrupted(ILogger logger, int count, double leaseSeconds);
}
