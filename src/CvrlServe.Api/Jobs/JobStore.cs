using System.Globalization;
using System.Text.Json;
using Microsoft.Extensions.Logging.Abstractions;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// Background jobs recorded on disk, one <c>{id}.json</c> per job in <see cref="Folder"/>, so that a restart
/// loses none: each write goes to a temporary file in the same folder that then replaces the record in one
/// rename, so a reader (or a crash) only ever sees a whole record. Safe to use from many threads: changes to
/// one job are serialized, changes to different jobs mostly run in parallel. Ids are made here (32 lower-case
/// hex digits) and an id that is not of that form never becomes a path.
/// </summary>
public sealed partial class JobStore
{
    private const string RecordSuffix = ".json";
    private const string TemporarySuffix = ".tmp";

    // A fixed set of locks picked by id, rather than one per job, so memory stays bounded however many
    // jobs pass through; two jobs sharing a lock only wait for each other's (millisecond) writes.
    private const int LockStripes = 64;

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        RespectNullableAnnotations = true,
        RespectRequiredConstructorParameters = true,
    };

    private readonly SemaphoreSlim[] _locks = Enumerable.Range(0, LockStripes).Select(_ => new SemaphoreSlim(1, 1)).ToArray();
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    /// <summary>Opens (creating it if needed) the folder that holds the job records.</summary>
    public JobStore(string folder, ILogger<JobStore>? logger = null, TimeProvider? timeProvider = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(folder);
        Folder = Path.GetFullPath(folder);
        Directory.CreateDirectory(Folder);
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    public string Folder { get; }

    /// <summary>True for a string of the form this store issues as an id: exactly 32 lower-case hex digits.</summary>
    public static bool IsValidId(string? id) => id is { Length: 32 } && id.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>Records a new job, <see cref="JobState.Queued"/> at progress 0, and returns it once it is on disk.</summary>
    public async Task<JobRecord> CreateAsync(string kind, string? owner, CancellationToken cancellationToken)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        var now = _time.GetUtcNow();
        var job = new JobRecord(Guid.NewGuid().ToString("N"), kind, JobState.Queued, 0, null, now, now, owner, null, null);
        await WriteAsync(job, cancellationToken).ConfigureAwait(false);
        return job;
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the job as it stands on disk and records the result, with no other
    /// change to the same job in between (so concurrent updates are never lost). Whatever
    /// <paramref name="change"/> returns, the id, kind, owner and creation time are kept, the update time is
    /// set to now and progress is clamped to [0, 1]. Throws <see cref="JobNotFoundException"/> for an unknown or
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

        var gate = LockFor(id);
        await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
        try
        {
            var current = await ReadAsync(id, cancellationToken).ConfigureAwait(false) ?? throw new JobNotFoundException($"no readable record for job {id} in '{Folder}'");
            if (current.IsFinished)
            {
                throw new JobFinishedException(current);
            }

            var next = change(current) ?? throw new InvalidOperationException("The job change returned null.");
            next = next with
            {
                Id = current.Id,
                Kind = current.Kind,
                Owner = current.Owner,
                CreatedUtc = current.CreatedUtc,
                UpdatedUtc = _time.GetUtcNow(),
                Progress = double.IsNaN(next.Progress) ? current.Progress : Math.Clamp(next.Progress, 0, 1),
            };
            await WriteAsync(next, cancellationToken).ConfigureAwait(false);
            return next;
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// The job as last recorded, or null when <paramref name="id"/> is not a well-formed id (no path is then
    /// built from it), when no such job exists, or when its record cannot be read (that is logged).
    /// </summary>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken) =>
        IsValidId(id) ? await ReadAsync(id, cancellationToken).ConfigureAwait(false) : null;

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
    /// Marks every job still queued or running as failed with <see cref="JobErrors.Interrupted"/> (nothing of a
    /// previous run is executing any more) and removes temporary files a crash left behind; returns how many
    /// jobs were marked. Unreadable records are skipped and logged, never fatal. Call it once at start-up,
    /// before any job is created: a job queued meanwhile would be marked too.
    /// </summary>
    public async Task<int> RecoverAsync(CancellationToken cancellationToken)
    {
        foreach (string temporary in Directory.EnumerateFiles(Folder, "*" + TemporarySuffix))
        {
            TryDelete(temporary);
        }

        int interrupted = 0;
        foreach (string id in RecordIds())
        {
            var gate = LockFor(id);
            await gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            try
            {
                var job = await ReadAsync(id, cancellationToken).ConfigureAwait(false);
                if (job is null || job.IsFinished)
                {
                    continue;
                }

                var error = new JobError(JobErrors.Interrupted, "Interrupted", "The service restarted before the job finished; submit it again.");
                await WriteAsync(job with { State = JobState.Failed, Error = error, UpdatedUtc = _time.GetUtcNow() }, cancellationToken).ConfigureAwait(false);
                interrupted++;
            }
            finally
            {
                gate.Release();
            }
        }

        if (interrupted > 0)
        {
            LogInterrupted(_logger, interrupted);
        }

        return interrupted;
    }

    /// <summary>
    /// Deletes the records of finished jobs last updated more than <paramref name="age"/> ago and returns how
    /// many went. Queued and running jobs are never deleted; unreadable records are left for a person to see.
    /// </summary>
    public int DeleteOlderThan(TimeSpan age)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(age, TimeSpan.Zero);
        var cutoff = _time.GetUtcNow() - age;
        int deleted = 0;
        foreach (string id in RecordIds())
        {
            var gate = LockFor(id);
            gate.Wait();
            try
            {
                var job = Parse(id, () => File.ReadAllBytes(PathOf(id)));
                if (job is { IsFinished: true } && job.UpdatedUtc < cutoff && TryDelete(PathOf(id)))
                {
                    deleted++;
                }
            }
            finally
            {
                gate.Release();
            }
        }

        return deleted;
    }

    private string PathOf(string id) => Path.Combine(Folder, id + RecordSuffix);

    private SemaphoreSlim LockFor(string id) => _locks[int.Parse(id.AsSpan(0, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture) % LockStripes];

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
        // A record deleted between listing and reading (retention) is simply gone, not a fault.
        if (error is not FileNotFoundException)
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

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} job(s) left unfinished by the previous run were marked failed (interrupted)")]
    private static partial void LogInterrupted(ILogger logger, int count);
}
