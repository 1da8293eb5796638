using System.Diagnostics;
using System.Text.RegularExpressions;

namespace CvrlServe.Tools;

/// <summary>
/// The built service as a child process for the benchmarks: <c>dotnet CvrlServe.Api.dll</c> run from its output
/// folder (so it reads its own appsettings.json) with <c>ASPNETCORE_URLS=http://127.0.0.1:0</c> and the given
/// environment; the address Kestrel chose is parsed from its "Now listening on:" line. Its output is drained
/// (a tail kept for errors). Disposing kills it.
/// </summary>
public sealed partial class ChildServer : IDisposable
{
    private readonly Process _process;
    private readonly Queue<string> _tail = new();
    private readonly TaskCompletionSource<Uri> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ChildServer(Process process)
    {
        _process = process;
        process.OutputDataReceived += (_, e) => Line(e.Data);
        process.ErrorDataReceived += (_, e) => Line(e.Data);
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        process.Exited += (_, _) => _listening.TrySetException(new InvalidOperationException("the server exited before listening:\n" + Tail()));
        process.EnableRaisingEvents = true;
    }

    public bool HasExited => _process.HasExited;

    public static ChildServer Start(string dll, IReadOnlyDictionary<string, string> environment)
    {
        ArgumentNullException.ThrowIfNull(environment);
        var start = new ProcessStartInfo("dotnet")
        {
            WorkingDirectory = Path.GetDirectoryName(dll)!,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        start.ArgumentList.Add(dll);
        start.Environment["ASPNETCORE_URLS"] = "http://127.0.0.1:0";
        start.Environment["ASPNETCORE_ENVIRONMENT"] = "Production";
        foreach (var (name, value) in environment)
        {
            start.Environment[name] = value;
        }

        return new ChildServer(Process.Start(start) ?? throw new InvalidOperationException("the server did not start"));
    }

    /// <summary>A client of the server once it listens and <c>/health/ready</c> answers 200 (2 minutes at most).</summary>
    public async Task<HttpClient> ReadyClientAsync()
    {
        var address = await _listening.Task.WaitAsync(TimeSpan.FromMinutes(2));
        var http = new HttpClient { BaseAddress = address, Timeout = TimeSpan.FromMinutes(10) };
        var deadline = Stopwatch.StartNew();
        while (deadline.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (_process.HasExited)
            {
                throw new InvalidOperationException("the server exited:\n" + Tail());
            }

            using var ready = await http.GetAsync(new Uri("/health/ready", UriKind.Relative));
            if (ready.IsSuccessStatusCode)
            {
                return http;
            }

            await Task.Delay(200);
        }

        http.Dispose();
        throw new TimeoutException("the server was not ready within 2 minutes:\n" + Tail());
    }

    public string Tail()
    {
        lock (_tail)
        {
            return string.Join('\n', _tail);
        }
    }

    public void Dispose()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            _process.WaitForExit();
        }

        _process.Dispose();
    }

    /// <summary>The repository's root: the first folder above the current one holding CvrlServe.sln.</summary>
    public static string RepositoryRoot()
    {
        for (var dir = new DirectoryInfo(Directory.GetCurrentDirectory()); dir is not null; dir = dir.Parent)
        {
            if (File.Exists(Path.Combine(dir.FullName, "CvrlServe.sln")))
            {
                return dir.FullName;
            }
        }

        throw new InvalidOperationException("run inside the repository (no CvrlServe.sln above the current folder)");
    }

    /// <summary>The 1, 5 and 15 minute load averages, for the record of a noisy machine.</summary>
    public static string LoadAverage() => File.Exists("/proc/loadavg") ? string.Join(' ', File.ReadAllText("/proc/loadavg").Split(' ').Take(3)) : "n/a";

    private void Line(string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (_tail)
        {
            _tail.Enqueue(line);
            if (_tail.Count > 50)
            {
                _tail.Dequeue();
            }
        }

        if (Listening().Match(line) is { Success: true } match)
        {
            _listening.TrySetResult(new Uri(match.Groups[1].Value));
        }
    }

    [GeneratedRegex(@"Now listening on: (http://\S+)")]
    private static partial Regex Listening();
}
