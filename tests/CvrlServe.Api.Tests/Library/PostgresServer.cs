using System.Diagnostics;
using Npgsql;

namespace CvrlServe.Api.Tests.Library;

/// <summary>The tests that need a PostgreSQL server share one; they run one class at a time.</summary>
[CollectionDefinition(Name)]
public sealed class SharedPostgres : ICollectionFixture<PostgresServer>
{
    public const string Name = "postgres";
}

/// <summary>
/// A real PostgreSQL server (Debian's postgresql-15 binaries) for the tests: a new cluster in a temporary
/// folder, listening only on a Unix socket in that folder (no TCP port to collide on), fsync off, stopped
/// and removed when the tests end. As root, initdb and the server run as the <c>postgres</c> user (the
/// server refuses root). Each test asks for its own empty database with <see cref="CreateDatabaseAsync"/>.
/// Missing binaries fail the tests with what to install: the contract is tested against both stores or not at all.
/// </summary>
public sealed class PostgresServer : IAsyncLifetime
{
    private readonly string _root = Path.Combine(Path.GetTempPath(), "cvrl-pg-" + Guid.NewGuid().ToString("N")[..12]);
    private string _bin = "";
    private int _databases;

    private string DataFolder => Path.Combine(_root, "data");

    /// <summary>The folder of the server's socket: the Host of a connection string.</summary>
    public string SocketFolder => _root;

    public async Task InitializeAsync()
    {
        _bin = FindBinaries();
        Directory.CreateDirectory(_root);
        if (IsRoot)
        {
            await RunAsync("chown", ["postgres:postgres", _root]);
        }

        await RunAsync(Path.Combine(_bin, "initdb"), ["-D", DataFolder, "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"], asPostgres: true);
        await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataFolder, "-l", Path.Combine(_root, "server.log"), "-w", "-t", "60",
            "-o", $"-k {_root} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start"], asPostgres: true);
    }

    /// <summary>A new, empty database and its connection string.</summary>
    public async Task<string> CreateDatabaseAsync()
    {
        string name = $"cvrl_test_{Interlocked.Increment(ref _databases)}_{Guid.NewGuid().ToString("N")[..8]}";
        await using (var connection = new NpgsqlConnection(ConnectionString("postgres")))
        {
            await connection.OpenAsync();
            await using var command = new NpgsqlCommand($"CREATE DATABASE {name}", connection);
            await command.ExecuteNonQueryAsync();
        }

        return ConnectionString(name);
    }

    public async Task DisposeAsync()
    {
        if (File.Exists(Path.Combine(DataFolder, "postmaster.pid")))
        {
            await RunAsync(Path.Combine(_bin, "pg_ctl"), ["-D", DataFolder, "-m", "immediate", "-w", "stop"], asPostgres: true);
        }

        Directory.Delete(_root, recursive: true);
    }

    private string ConnectionString(string database) =>
        new NpgsqlConnectionStringBuilder { Host = _root, Username = "postgres", Database = database, Pooling = true, MaxPoolSize = 20 }.ConnectionString;

    private static bool IsRoot => Environment.UserName == "root";

    private static string FindBinaries()
    {
        var found = Directory.Exists("/usr/lib/postgresql")
            ? Directory.GetDirectories("/usr/lib/postgresql").Select(v => Path.Combine(v, "bin")).Where(b => File.Exists(Path.Combine(b, "initdb"))).Order().LastOrDefault()
            : null;
        return found ?? throw new InvalidOperationException("PostgreSQL's server binaries are not installed (/usr/lib/postgresql/*/bin/initdb): apt-get install postgresql-15, or run tools/test.sh, which does.");
    }

    private static async Task RunAsync(string program, IReadOnlyList<string> arguments, bool asPostgres = false)
    {
        var start = new ProcessStartInfo(asPostgres && IsRoot ? "runuser" : program) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        if (asPostgres && IsRoot)
        {
            foreach (string a in new[] { "-u", "postgres", "--", program })
            {
                start.ArgumentList.Add(a);
            }
        }

        foreach (string a in arguments)
        {
            start.ArgumentList.Add(a);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(120));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{program} {string.Join(' ', arguments)} exited {process.ExitCode}: {await output}{await error}");
        }
    }
}
