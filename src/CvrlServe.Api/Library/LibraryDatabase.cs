using System.Data;
using System.Data.Common;
using Microsoft.Data.Sqlite;
using Npgsql;

namespace CvrlServe.Api.Library;

/// <summary>
/// The library's database: SQLite (a file in the data folder, the embedded default) or PostgreSQL (one
/// database shared by many replicas). Both run the same SQL: the few places where the two differ (column
/// types, the migration lock, how writers are serialized) are this class's and nowhere else's.
/// <para>
/// <see cref="MigrateAsync"/> applies the versioned schema at start under a lock (PostgreSQL: a session
/// advisory lock; SQLite: an immediate transaction, which holds the file's write lock), so replicas may start
/// together: the first applies what is missing, the others find it applied.
/// </para>
/// </summary>
public sealed class LibraryDatabase : IAsyncDisposable
{
    /// <summary>The advisory-lock keys (PostgreSQL): migrations, and the writers of the change log.</summary>
    private const long MigrationLockKey = 0x43_56_52_4C_4D_49_47; // "CVRLMIG"
    private const long WriteLockKey = 0x43_56_52_4C_57_52_54;     // "CVRLWRT"

    private readonly NpgsqlDataSource? _postgres;
    private readonly string? _sqlite;

    private LibraryDatabase(NpgsqlDataSource? postgres, string? sqlite)
    {
        _postgres = postgres;
        _sqlite = sqlite;
    }

    /// <summary>True for PostgreSQL, false for SQLite.</summary>
    public bool IsPostgres => _postgres is not null;

    /// <summary>What the store is, for logs and /v1/models: "sqlite" or "postgresql".</summary>
    public string Kind => IsPostgres ? "postgresql" : "sqlite";

    /// <summary>A SQLite database in <paramref name="file"/> (created when missing).</summary>
    public static LibraryDatabase Sqlite(string file)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(file);
        Directory.CreateDirectory(Path.GetDirectoryName(Path.GetFullPath(file))!);
        var builder = new SqliteConnectionStringBuilder { DataSource = Path.GetFullPath(file), Mode = SqliteOpenMode.ReadWriteCreate, Pooling = true, DefaultTimeout = 30 };
        return new LibraryDatabase(null, builder.ConnectionString);
    }

    /// <summary>A PostgreSQL database named by an Npgsql connection string.</summary>
    public static LibraryDatabase Postgres(string connectionString)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(connectionString);
        return new LibraryDatabase(NpgsqlDataSource.Create(connectionString), null);
    }

    /// <summary>An open connection. SQLite connections wait up to 30 s for another writer and run in WAL mode.</summary>
    public async Task<DbConnection> OpenAsync(CancellationToken cancellationToken)
    {
        if (_postgres is not null)
        {
            return await _postgres.OpenConnectionAsync(cancellationToken).ConfigureAwait(false);
        }

        var connection = new SqliteConnection(_sqlite);
        try
        {
            await connection.OpenAsync(cancellationToken).ConfigureAwait(false);
            await ExecuteAsync(connection, null, "PRAGMA busy_timeout = 30000; PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL;", cancellationToken).ConfigureAwait(false);
            return connection;
        }
        catch
        {
            await connection.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>
    /// A write transaction in which change-log sequence numbers are handed out in commit order: on
    /// PostgreSQL the transaction first takes a transaction-scoped advisory lock that every writer of the
    /// change log takes (so a reader that has seen sequence N never later finds a smaller one committed);
    /// SQLite's immediate transactions are serialized by the file's write lock already.
    /// </summary>
    public async Task<DbTransaction> BeginWriteAsync(DbConnection connection, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(connection);
        if (connection is SqliteConnection sqlite)
        {
            return sqlite.BeginTransaction(deferred: false);
        }

        var transaction = await connection.BeginTransactionAsync(IsolationLevel.ReadCommitted, cancellationToken).ConfigureAwait(false);
        await ExecuteAsync(connection, transaction, $"SELECT pg_advisory_xact_lock({WriteLockKey})", cancellationToken).ConfigureAwait(false);
        return transaction;
    }

    /// <summary>
    /// Applies every migration newer than the database's schema version, in order, each in its own
    /// transaction, under the migration lock. Returns the versions applied (none when up to date).
    /// </summary>
    public async Task<IReadOnlyList<int>> MigrateAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        if (!IsPostgres)
        {
            // WAL lets readers go on while one process writes; it is a property of the file, set once.
            await ExecuteAsync(connection, null, "PRAGMA journal_mode = WAL", cancellationToken).ConfigureAwait(false);
        }
        else
        {
            await ExecuteAsync(connection, null, $"SELECT pg_advisory_lock({MigrationLockKey})", cancellationToken).ConfigureAwait(false);
        }

        try
        {
            var applied = new List<int>();
            await using (var transaction = await BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false))
            {
                await ExecuteAsync(connection, transaction, "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)", cancellationToken).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
            }

            foreach (var (version, sql) in LibrarySchema.Migrations)
            {
                await using var transaction = await BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
                long current = await ScalarAsync<long?>(connection, transaction, "SELECT MAX(version) FROM schema_version", cancellationToken).ConfigureAwait(false) ?? 0;
                if (version <= current)
                {
                    continue;
                }

                foreach (string statement in sql.Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
                {
                    await ExecuteAsync(connection, transaction, Dialect(statement), cancellationToken).ConfigureAwait(false);
                }

                await ExecuteAsync(connection, transaction, "INSERT INTO schema_version (version) VALUES (@v)", cancellationToken, ("v", version)).ConfigureAwait(false);
                await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
                applied.Add(version);
            }

            return applied;
        }
        finally
        {
            if (IsPostgres)
            {
                await ExecuteAsync(connection, null, $"SELECT pg_advisory_unlock({MigrationLockKey})", CancellationToken.None).ConfigureAwait(false);
            }
        }
    }

    /// <summary>The schema version the database is at (0 before any migration).</summary>
    public async Task<int> SchemaVersionAsync(CancellationToken cancellationToken)
    {
        await using var connection = await OpenAsync(cancellationToken).ConfigureAwait(false);
        return (int)(await ScalarAsync<long?>(connection, null, "SELECT MAX(version) FROM schema_version", cancellationToken).ConfigureAwait(false) ?? 0);
    }

    /// <summary>A command with named parameters (<c>@name</c> in the text; both providers take that form).</summary>
    public static DbCommand Command(DbConnection connection, DbTransaction? transaction, string sql, params (string Name, object? Value)[] parameters)
    {
        ArgumentNullException.ThrowIfNull(connection);
        var command = connection.CreateCommand();
        command.CommandText = sql;
        command.Transaction = transaction;
        foreach (var (name, value) in parameters)
        {
            var parameter = command.CreateParameter();
            parameter.ParameterName = name;
            parameter.Value = value ?? DBNull.Value;
            if (value is null)
            {
                // Every nullable parameter is text; PostgreSQL cannot infer the type of an untyped null.
                parameter.DbType = DbType.String;
            }

            command.Parameters.Add(parameter);
        }

        return command;
    }

    public static async Task<int> ExecuteAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        return await command.ExecuteNonQueryAsync(cancellationToken).ConfigureAwait(false);
    }

    public static async Task<T?> ScalarAsync<T>(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string Name, object? Value)[] parameters)
    {
        await using var command = Command(connection, transaction, sql, parameters);
        object? value = await command.ExecuteScalarAsync(cancellationToken).ConfigureAwait(false);
        if (value is null or DBNull)
        {
            return default;
        }

        var target = Nullable.GetUnderlyingType(typeof(T)) ?? typeof(T);
        return (T)Convert.ChangeType(value, target, System.Globalization.CultureInfo.InvariantCulture);
    }

    public async ValueTask DisposeAsync()
    {
        if (_postgres is not null)
        {
            await _postgres.DisposeAsync().ConfigureAwait(false);
        }
        else
        {
            // Pooled SQLite connections keep the file open; a disposed store lets its own go (no one else's).
            using var connection = new SqliteConnection(_sqlite);
            SqliteConnection.ClearPool(connection);
        }
    }

    // The schema is written once with two placeholders for the types the two databases spell differently.
    private string Dialect(string sql) => IsPostgres
        ? sql.Replace("{blob}", "BYTEA", StringComparison.Ordinal).Replace("{serial}", "BIGSERIAL PRIMARY KEY", StringComparison.Ordinal)
        : sql.Replace("{blob}", "BLOB", StringComparison.Ordinal).Replace("{serial}", "INTEGER PRIMARY KEY AUTOINCREMENT", StringComparison.Ordinal);
}

/// <summary>The library's schema, one migration per version; a released migration is never edited, only followed.</summary>
internal static class LibrarySchema
{
    public static readonly (int Version, string Sql)[] Migrations =
    [
        (1, """
            CREATE TABLE videos (
                id TEXT PRIMARY KEY,
                owner TEXT NOT NULL,
                sha256 TEXT NOT NULL,
                model_id TEXT NOT NULL,
                model TEXT NOT NULL,
                name TEXT NOT NULL,
                tags TEXT NOT NULL,
                bytes BIGINT NOT NULL,
                duration_seconds DOUBLE PRECISION NOT NULL,
                dimension INTEGER NOT NULL,
                crops INTEGER NOT NULL,
                clip_plan TEXT NOT NULL,
                embedding {blob} NOT NULL,
                created_ms BIGINT NOT NULL,
                UNIQUE (owner, sha256, model_id)
            );
            CREATE INDEX videos_owner_created ON videos (owner, created_ms);
            CREATE INDEX videos_model ON videos (model_id);
            CREATE TABLE video_tags (
                video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
                tag TEXT NOT NULL,
                PRIMARY KEY (video_id, tag)
            );
            CREATE INDEX video_tags_tag ON video_tags (tag);
            CREATE TABLE clips (
                video_id TEXT NOT NULL REFERENCES videos (id) ON DELETE CASCADE,
                clip INTEGER NOT NULL,
                start_seconds DOUBLE PRECISION NOT NULL,
                end_seconds DOUBLE PRECISION NOT NULL,
                views {blob} NOT NULL,
                PRIMARY KEY (video_id, clip)
            );
            CREATE TABLE changes (
                seq {serial},
                video_id TEXT NOT NULL,
                model_id TEXT NOT NULL,
                op TEXT NOT NULL
            );
            CREATE TABLE jobs (
                id TEXT PRIMARY KEY,
                kind TEXT NOT NULL,
                owner TEXT,
                state TEXT NOT NULL,
                progress DOUBLE PRECISION NOT NULL,
                message TEXT,
                result TEXT,
                error TEXT,
                instance TEXT,
                payload TEXT,
                created_ms BIGINT NOT NULL,
                updated_ms BIGINT NOT NULL,
                heartbeat_ms BIGINT NOT NULL
            );
            CREATE INDEX jobs_created ON jobs (created_ms)
            """),
    ];
}
