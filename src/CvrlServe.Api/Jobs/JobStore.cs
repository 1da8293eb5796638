using System.Data.Common;
using System.Security.Cryptography;
using System.Text.Json;
using CvrlServe.Api.Library;
using Microsoft.Extensions.Logging.Abstractions;

namespace CvrlServe.Api.Jobs;

/// <summary>
/// Background jobs recorded in the library's database (<see cref="LibraryDatabase"/>: SQLite by default,
/// PostgreSQL for replicas), so that a restart loses none and every replica on the same database answers for
/// every job. Every read-modify-write (updates, heartbeats, recovery) runs in one write transaction, so a job
/// finished by one replica is never overwritten by another's stale view of it and concurrent updates are
/// never lost. Ids are made here (32 lower-case hex digits); anything else is no job.
/// <para>
/// Each store has an <see cref="Instance"/> id, new for every process start. A job records the instance that
/// created it; that instance's updates and <see cref="HeartbeatAsync"/> keep its heartbeat fresh, and
/// <see cref="RecoverAsync"/> (run by any replica, at start and periodically) marks failed only the jobs
/// whose heartbeat is older than a lease: a replica starting never interrupts another's live job. A job
/// that can be resumed (its input survived) is taken over with <see cref="ClaimAsync"/> instead.
/// </para>
/// <para>
/// A job may carry a <em>payload</em>: what its runner needs to run it again after a restart. The payload
/// is the server's (it may name files) and never appears in the <see cref="JobRecord"/> clients see.
/// </para>
/// </summary>
public sealed partial class JobStore
{
    private const string Columns = "id, kind, state, progress, message, created_ms, updated_ms, owner, result, error, instance, heartbeat_ms";

    private static readonly JsonSerializerOptions Json = new(JsonSerializerDefaults.Web);

    private readonly LibraryDatabase _database;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;

    public JobStore(LibraryDatabase database, ILogger<JobStore>? logger = null, TimeProvider? timeProvider = null)
    {
        _database = database ?? throw new ArgumentNullException(nameof(database));
        _logger = logger ?? (ILogger)NullLogger.Instance;
        _time = timeProvider ?? TimeProvider.System;
    }

    /// <summary>This store's process: 16 random hex digits, new for every start.</summary>
    public string Instance { get; } = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));

    /// <summary>True for a string of the form this store issues as an id: exactly 32 lower-case hex digits.</summary>
    public static bool IsValidId(string? id) => VideoStore.IsValidId(id);

    /// <summary>
    /// Records a new job, <see cref="JobState.Queued"/> at progress 0, held by this <see cref="Instance"/>, with
    /// an optional <paramref name="payload"/> (JSON the runner reads back with <see cref="PayloadAsync"/>).
    /// </summary>
    public async Task<JobRecord> CreateAsync(string kind, string? owner, CancellationToken cancellationToken, string? payload = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(kind);
        var now = Truncate(_time.GetUtcNow());
        var job = new JobRecord(Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16)), kind, JobState.Queued, 0, null, now, now, owner, null, null, Instance, now);
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await LibraryDatabase.ExecuteAsync(connection, null, $"INSERT INTO jobs ({Columns}, payload) VALUES (@id, @kind, @state, @progress, @message, @created, @updated, @owner, @result, @error, @instance, @heartbeat, @payload)",
            cancellationToken, [.. Parameters(job), ("payload", payload)]).ConfigureAwait(false);
        return job;
    }

    /// <summary>
    /// Applies <paramref name="change"/> to the job as it stands and records the result, with no other change
    /// to the same job in between, from any replica. Whatever <paramref name="change"/> returns, the id, kind,
    /// owner, instance and creation time are kept, the update time is set to now (and the heartbeat too when
    /// this instance holds the job) and progress is clamped to [0, 1]. Throws <see cref="JobNotFoundException"/>
    /// for an unknown or malformed id and <see cref="JobFinishedException"/> when the job has already succeeded
    /// or failed, in which case <paramref name="change"/> is not called. When <paramref name="change"/>
    /// throws, nothing is written.
    /// </summary>
    public async Task<JobRecord> UpdateAsync(string id, Func<JobRecord, JobRecord> change, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(change);
        if (!IsValidId(id))
        {
            throw new JobNotFoundException("malformed job id");
        }

        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await _database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        var current = await ReadAsync(connection, transaction, id, cancellationToken).ConfigureAwait(false) ?? throw new JobNotFoundException($"no job {id}");
        if (current.IsFinished)
        {
            throw new JobFinishedException(current);
        }

        var next = change(current) ?? throw new InvalidOperationException("The job change returned null.");
        var now = Truncate(_time.GetUtcNow());
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
        await WriteAsync(connection, transaction, next, cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return next;
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
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        foreach (string id in ids.Where(IsValidId))
        {
            stamped += await LibraryDatabase.ExecuteAsync(connection, null, "UPDATE jobs SET heartbeat_ms = @now WHERE id = @id AND instance = @instance AND state IN ('queued', 'running')",
                cancellationToken, ("now", Truncate(_time.GetUtcNow()).ToUnixTimeMilliseconds()), ("id", id), ("instance", Instance)).ConfigureAwait(false);
        }

        return stamped;
    }

    /// <summary>The job as last recorded, or null when <paramref name="id"/> is not a well-formed id or no such job exists.</summary>
    public async Task<JobRecord?> GetAsync(string id, CancellationToken cancellationToken)
    {
        if (!IsValidId(id))
        {
            return null;
        }

        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await ReadAsync(connection, null, id, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>The payload the job was created with, or null.</summary>
    public async Task<string?> PayloadAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await LibraryDatabase.ScalarAsync<string>(connection, null, "SELECT payload FROM jobs WHERE id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
    }

    /// <summary>
    /// Takes over job <paramref name="id"/> for this <see cref="Instance"/> when it is unfinished and its
    /// holder's heartbeat is older than <paramref name="lease"/> (its process is gone): the job is queued
    /// again under this instance. Exactly one replica wins a race for the same job. Returns the job when
    /// this call took it, else null.
    /// </summary>
    public async Task<JobRecord?> ClaimAsync(string id, TimeSpan lease, string message, CancellationToken cancellationToken)
    {
        var now = Truncate(_time.GetUtcNow());
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        int taken = await LibraryDatabase.ExecuteAsync(connection, null, """
            UPDATE jobs SET instance = @instance, heartbeat_ms = @now, updated_ms = @now, state = 'queued', message = @message
            WHERE id = @id AND state IN ('queued', 'running') AND heartbeat_ms < @cutoff
            """, cancellationToken, ("instance", Instance), ("now", now.ToUnixTimeMilliseconds()), ("message", message), ("id", id), ("cutoff", (now - lease).ToUnixTimeMilliseconds())).ConfigureAwait(false);
        return taken == 1 ? await ReadAsync(connection, null, id, cancellationToken).ConfigureAwait(false) : null;
    }

    /// <summary>Unfinished jobs of <paramref name="kind"/> whose heartbeat is older than <paramref name="lease"/>: candidates for <see cref="ClaimAsync"/>.</summary>
    public async Task<IReadOnlyList<JobRecord>> StaleAsync(string kind, TimeSpan lease, CancellationToken cancellationToken)
    {
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await QueryAsync(connection, null, $"SELECT {Columns} FROM jobs WHERE kind = @kind AND state IN ('queued', 'running') AND heartbeat_ms < @cutoff ORDER BY created_ms",
            cancellationToken, ("kind", kind), ("cutoff", (Truncate(_time.GetUtcNow()) - lease).ToUnixTimeMilliseconds())).ConfigureAwait(false);
    }

    /// <summary>Up to <paramref name="max"/> jobs, newest first; only <paramref name="owner"/>'s unless it is null.</summary>
    public async Task<IReadOnlyList<JobRecord>> ListAsync(int max, CancellationToken cancellationToken, string? owner = null)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(max);
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await QueryAsync(connection, null, $"SELECT {Columns} FROM jobs WHERE (@owner IS NULL OR owner = @owner) ORDER BY created_ms DESC, id DESC LIMIT @max",
            cancellationToken, ("owner", owner), ("max", max)).ConfigureAwait(false);
    }

    /// <summary>
    /// Marks failed, with <see cref="JobErrors.Interrupted"/>, every job still queued or running whose
    /// heartbeat (<see cref="JobRecord.LastSeenUtc"/>) is older than <paramref name="lease"/> (of the given
    /// kinds, or every kind when none are given): the process that held it is gone, whichever replica it was.
    /// Live jobs of other replicas, whose heartbeats are fresh, are left alone, so any replica may call this
    /// at start and periodically. Returns how many jobs were marked.
    /// </summary>
    public async Task<int> RecoverAsync(TimeSpan lease, CancellationToken cancellationToken, params string[] kinds)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(lease, TimeSpan.Zero);
        var now = Truncate(_time.GetUtcNow());
        var error = new JobError(JobErrors.Interrupted, "Interrupted", "The service process running the job stopped before the job finished; submit it again.");
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        string kindFilter = kinds.Length == 0 ? "" : $" AND kind IN ({string.Join(", ", kinds.Select((_, i) => "@k" + i))})";
        int interrupted = await LibraryDatabase.ExecuteAsync(connection, null,
            $"UPDATE jobs SET state = 'failed', error = @error, message = @message, updated_ms = @now WHERE state IN ('queued', 'running') AND heartbeat_ms < @cutoff{kindFilter}",
            cancellationToken, [("error", JsonSerializer.Serialize(error, Json)), ("message", error.Detail), ("now", now.ToUnixTimeMilliseconds()), ("cutoff", (now - lease).ToUnixTimeMilliseconds()),
                .. kinds.Select((k, i) => ("k" + i, (object?)k))]).ConfigureAwait(false);
        if (interrupted > 0)
        {
            LogInterrupted(_logger, interrupted, lease.TotalSeconds);
        }

        return interrupted;
    }

    /// <summary>
    /// Deletes the records of finished jobs last updated more than <paramref name="age"/> ago and returns how
    /// many went. Queued and running jobs are never deleted.
    /// </summary>
    public async Task<int> DeleteOlderThanAsync(TimeSpan age, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(age, TimeSpan.Zero);
        await using var connection = await _database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await LibraryDatabase.ExecuteAsync(connection, null, "DELETE FROM jobs WHERE state IN ('succeeded', 'failed') AND updated_ms < @cutoff",
            cancellationToken, ("cutoff", (_time.GetUtcNow() - age).ToUnixTimeMilliseconds())).ConfigureAwait(false);
    }

    // Times are kept to the millisecond, so what a caller is given equals what it later reads back.
    private static DateTimeOffset Truncate(DateTimeOffset time) => DateTimeOffset.FromUnixTimeMilliseconds(time.ToUnixTimeMilliseconds());

    private static (string, object?)[] Parameters(JobRecord job) =>
    [
        ("id", job.Id), ("kind", job.Kind), ("state", StateName(job.State)), ("progress", job.Progress), ("message", job.Message),
        ("created", job.CreatedUtc.ToUnixTimeMilliseconds()), ("updated", job.UpdatedUtc.ToUnixTimeMilliseconds()), ("owner", job.Owner),
        ("result", job.Result is { } result ? result.GetRawText() : null), ("error", job.Error is { } error ? JsonSerializer.Serialize(error, Json) : null),
        ("instance", job.Instance), ("heartbeat", job.LastSeenUtc.ToUnixTimeMilliseconds()),
    ];

    private static string StateName(JobState state) => state switch
    {
        JobState.Queued => "queued",
        JobState.Running => "running",
        JobState.Succeeded => "succeeded",
        _ => "failed",
    };

    private static Task<int> WriteAsync(DbConnection connection, DbTransaction transaction, JobRecord job, CancellationToken cancellationToken) =>
        LibraryDatabase.ExecuteAsync(connection, transaction, """
            UPDATE jobs SET state = @state, progress = @progress, message = @message, updated_ms = @updated, result = @result, error = @error, heartbeat_ms = @heartbeat
            WHERE id = @id
            """, cancellationToken, Parameters(job));

    private static async Task<JobRecord?> ReadAsync(DbConnection connection, DbTransaction? transaction, string id, CancellationToken cancellationToken)
    {
        var found = await QueryAsync(connection, transaction, $"SELECT {Columns} FROM jobs WHERE id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
        return found.Count > 0 ? found[0] : null;
    }

    private static async Task<IReadOnlyList<JobRecord>> QueryAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var command = LibraryDatabase.Command(connection, transaction, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var jobs = new List<JobRecord>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            string? result = reader.IsDBNull(8) ? null : reader.GetString(8);
            string? error = reader.IsDBNull(9) ? null : reader.GetString(9);
            jobs.Add(new JobRecord(
                reader.GetString(0), reader.GetString(1),
                reader.GetString(2) switch { "queued" => JobState.Queued, "running" => JobState.Running, "succeeded" => JobState.Succeeded, _ => JobState.Failed },
                reader.GetDouble(3), reader.IsDBNull(4) ? null : reader.GetString(4),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(5)), DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(6)),
                reader.IsDBNull(7) ? null : reader.GetString(7),
                result is null ? null : JsonSerializer.Deserialize<JsonElement>(result),
                error is null ? null : JsonSerializer.Deserialize<JobError>(error, Json),
                reader.IsDBNull(10) ? null : reader.GetString(10),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(11))));
        }

        return jobs;
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "{Count} job(s) whose process stopped (no heartbeat for {LeaseSeconds} s) were marked failed (interrupted)")]
    private static partial void LogInterrupted(ILogger logger, int count, double leaseSeconds);
}
