using System.Diagnostics;
using System.Text.RegularExpressions;
using CvrlServe.Core;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// The built service (<c>CvrlServe.Api.dll</c> from the test's output folder) run as its own process,
/// <c>dotnet CvrlServe.Api.dll --urls http://127.0.0.1:0</c>, with a temporary models folder (a copy of the
/// committed tiny encoder as <c>tiny</c>), a temporary data folder and its settings as environment
/// variables. The port Kestrel chose is read from its "Now listening on" log line; the server is returned
/// once <c>/health/ready</c> answers 200. Every line it prints is kept (the test's diagnostics) and can be
/// waited for. Disposing sends SIGTERM, waits for the exit, kills the process if it is still alive, and
/// deletes the folders; a failed start disposes too, so nothing is left behind. Replicas of one deployment
/// share folders the test made (<see cref="StartAsync(IReadOnlyDictionary{string, string?}?, string?)"/>):
/// those are the test's to delete.
/// </summary>
public sealed partial class KestrelServer : IAsyncDisposable
{
    public const string Model = CvrlApiFactory.Model;
    public const string AdminKey = CvrlApiFactory.AdminKey;
    public const string ClientKey = CvrlApiFactory.ClientKey;
    private const int MaxLogLines = 5000;

    private readonly Process _process = new();
    private readonly List<string> _lines = [];
    private readonly List<(string Fragment, TaskCompletionSource<string> Seen)> _waiters = [];
    private readonly TaskCompletionSource _exited = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly bool _ownsRoot;

    private KestrelServer(string? sharedRoot)
    {
        _ownsRoot = sharedRoot is null;
        Root = sharedRoot ?? Directory.CreateTempSubdirectory("cvrl-e2e-").FullName;
        ModelsFolder = Path.Combine(Root, "models");
        DataFolder = Path.Combine(Root, "data");
        if (_ownsRoot)
        {
            CvrlApiFactory.CopyModel(Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed1"), Path.Combine(ModelsFolder, Model));
        }
    }

    public string Root { get; }

    public string ModelsFolder { get; }

    public string DataFolder { get; }

    /// <summary>http://127.0.0.1:PORT/ as the server reported it.</summary>
    public Uri BaseAddress { get; private set; } = null!;

    public int ProcessId => _process.Id;

    public bool HasExited => _exited.Task.IsCompleted;

    /// <summary>Everything the server printed so far (stdout and stderr), one line each.</summary>
    public string Log
    {
        get
        {
            lock (_lines)
            {
                return string.Join('\n', _lines);
            }
        }
    }

    /// <summary>
    /// Starts the server with the defaults below (keys, CPU, rate limiting off) overridden by
    /// <paramref name="settings"/> (environment variable names such as <c>Cvrl__RateLimit__PermitsPerWindow</c>;
    /// a null value removes the default) and waits until it is ready. A <c>Cvrl__MetricsPort</c> among them
    /// makes the server listen on that loopback port too; <see cref="BaseAddress"/> stays the other one.
    /// </summary>
    public static Task<KestrelServer> StartAsync(IReadOnlyDictionary<string, string?>? settings = null) => StartAsync(settings, sharedRoot: null);

    /// <summary>
    /// As <see cref="StartAsync(IReadOnlyDictionary{string, string?}?)"/>, on <c>models</c> and <c>data</c> under
    /// <paramref name="sharedRoot"/> when given: folders the caller prepared (the models in them), that other
    /// servers may use at the same time, and that disposing leaves in place.
    /// </summary>
    public static async Task<KestrelServer> StartAsync(IReadOnlyDictionary<string, string?>? settings, string? sharedRoot)
    {
        var server = new KestrelServer(sharedRoot);
        try
        {
            await server.RunAsync(settings ?? new Dictionary<string, string?>());
            return server;
        }
        catch
        {
            await server.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client for this server, sending <paramref name="key"/> as X-Api-Key when given.</summary>
    public HttpClient Client(string? key = null)
    {
        var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromMinutes(2) };
        if (key is not null)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", key);
        }

        return client;
    }

    /// <summary>
    /// The first line the server printed that contains <paramref name="fragment"/>, already printed or yet
    /// to come; fails with the log when the server exits first or <paramref name="timeout"/> passes.
    /// </summary>
    public async Task<string> WaitForLogAsync(string fragment, TimeSpan timeout)
    {
        TaskCompletionSource<string> seen = new(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lines)
        {
            if (_lines.FirstOrDefault(l => l.Contains(fragment, StringComparison.Ordinal)) is { } line)
            {
                return line;
            }

            _waiters.Add((fragment, seen));
        }

        var first = await Task.WhenAny(seen.Task, _exited.Task, Task.Delay(timeout));
        if (first == seen.Task)
        {
            return await seen.Task;
        }

        // The last lines may still be in the pipe when the exit is seen.
        if (first == _exited.Task)
        {
            await _process.WaitForExitAsync();
        }

        lock (_lines)
        {
            _waiters.RemoveAll(w => w.Seen == seen);
        }

        return seen.Task.IsCompletedSuccessfully
            ? await seen.Task
            : throw new TimeoutException($"The server {(HasExited ? "exited" : $"did not print it within {timeout}")} before printing '{fragment}'. Its log:\n{Log}");
    }

    /// <summary>Sends SIGTERM, as a container runtime or systemd stops a service.</summary>
    public async Task TerminateAsync()
    {
        var result = await ToolProcess.RunAsync("kill", ["-TERM", ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture)], null, TimeSpan.FromSeconds(10), "kill");
        Assert.True(result.ExitCode == 0, $"kill -TERM {ProcessId} failed: {string.Join('\n', result.StderrTail)}");
    }

    /// <summary>Sends SIGKILL to the process and its children (ffmpeg), as a container runtime kills a container's cgroup: no drain at all.</summary>
    public async Task KillAsync()
    {
        _process.Kill(entireProcessTree: true);
        await _process.WaitForExitAsync();
    }

    /// <summary>The exit code once the process has exited, or null if it is still running after <paramref name="timeout"/>.</summary>
    public async Task<int?> WaitForExitAsync(TimeSpan timeout)
    {
        if (await Task.WhenAny(_exited.Task, Task.Delay(timeout)) != _exited.Task)
        {
            return null;
        }

        await _process.WaitForExitAsync(); // also waits for the output to be drained
        return _process.ExitCode;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (IsStarted() && !HasExited)
            {
                try
                {
                    await TerminateAsync();
                }
                catch (Exception e) when (e is InvalidOperationException or DeadlineExceededException or Xunit.Sdk.XunitException)
                {
                    // Killed below.
                }

                if (await WaitForExitAsync(TimeSpan.FromSeconds(15)) is null)
                {
                    _process.Kill(entireProcessTree: true);
                    await _process.WaitForExitAsync();
                }
            }
        }
        finally
        {
            _process.Dispose();
            if (_ownsRoot && Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
    }

    [GeneratedRegex(@"Now listening on: (http://127\.0\.0\.1:\d+)")]
    private static partial Regex ListeningLine();

    private bool IsStarted()
    {
        try
        {
            return _process.Id > 0;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private async Task RunAsync(IReadOnlyDictionary<string, string?> settings)
    {
        // The dotnet host that runs the tests runs the service too (the test host sets DOTNET_HOST_PATH).
        string dotnet = Environment.GetEnvironmentVariable("DOTNET_HOST_PATH") is { Length: > 0 } host ? host : "dotnet";
        var start = new ProcessStartInfo(dotnet)
        {
            // The output folder holds the service's appsettings.json: its content root.
            WorkingDirectory = AppContext.BaseDirectory,
            UseShellExecute = false,
            RedirectStandardInput = true,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        int metricsPort = settings.TryGetValue("Cvrl__MetricsPort", out string? port) && port is not null ? int.Parse(port, System.Globalization.CultureInfo.InvariantCulture) : 0;
        string urls = metricsPort == 0 ? "http://127.0.0.1:0" : $"http://127.0.0.1:0;http://127.0.0.1:{metricsPort}";
        foreach (string argument in new[] { Path.Combine(AppContext.BaseDirectory, "CvrlServe.Api.dll"), "--urls", urls })
        {
            start.ArgumentList.Add(argument);
        }

        // Nothing of the test process's own hosting settings leaks in.
        foreach (string name in start.Environment.Keys.Where(k => k.StartsWith("Cvrl__", StringComparison.OrdinalIgnoreCase) || k.StartsWith("ASPNETCORE_", StringComparison.OrdinalIgnoreCase)).ToArray())
        {
            start.Environment.Remove(name);
        }

        var environment = new Dictionary<string, string?>
        {
            ["Cvrl__ModelsFolder"] = ModelsFolder,
            ["Cvrl__DataFolder"] = DataFolder,
            ["Cvrl__Provider"] = "Cpu",
            ["Cvrl__Keys__Admin__0"] = AdminKey,
            ["Cvrl__Keys__Clients__0"] = ClientKey,
            ["Cvrl__RateLimit__PermitsPerWindow"] = "0",
            ["Cvrl__Batching__IntraOpThreads"] = "1",
            ["Logging__Console__FormatterName"] = "simple",
            ["Logging__Console__FormatterOptions__SingleLine"] = "true",
            ["Logging__Console__FormatterOptions__ColorBehavior"] = "Disabled",
            ["Logging__LogLevel__Microsoft.Hosting.Lifetime"] = "Information",
        };
        foreach (var (name, value) in settings)
        {
            environment[name] = value;
        }

        foreach (var (name, value) in environment)
        {
            if (value is not null)
            {
                start.Environment[name] = value;
            }
        }

        _process.StartInfo = start;
        _process.EnableRaisingEvents = true;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Exited += (_, _) => _exited.TrySetResult();
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();
        _process.StandardInput.Close();

        await WaitForLogAsync("Application started", TimeSpan.FromSeconds(60));
        var listening = ListeningLine().Matches(Log).Select(m => new Uri(m.Groups[1].Value + "/")).Where(u => u.Port != metricsPort).ToArray();
        Assert.True(listening.Length == 1, $"Expected one listening line (besides the metrics port) in:\n{Log}");
        BaseAddress = listening[0];

        // Ready is a state (models loaded, ffmpeg found), not an event the server prints: poll it, bounded.
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            using (var response = await client.GetAsync(new Uri("health/ready", UriKind.Relative)))
            {
                if (response.IsSuccessStatusCode)
                {
                    return;
                }
            }

            if (HasExited || deadline.Elapsed > TimeSpan.FromSeconds(60))
            {
                throw new TimeoutException($"The server was not ready within 60 s. Its log:\n{Log}");
            }

            await Task.Delay(100);
        }
    }

    private void Append(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_lines)
        {
            if (_lines.Count < MaxLogLines)
            {
                _lines.Add(line);
            }

            foreach (var waiter in _waiters.Where(w => line.Contains(w.Fragment, StringComparison.Ordinal)).ToArray())
            {
                waiter.Seen.TrySetResult(line);
                _waiters.Remove(waiter);
            }
        }
    }
}
