using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// nginx (the system's binary, not its service) run as a child process with the repository's
/// <c>deploy/nginx/cvrlserve.conf.template</c> in front of the given replicas, on a free loopback port.
/// Everything it writes (config, pid, error and access logs, the temp paths for request bodies) is in one
/// temporary folder, deleted on dispose. The folder is made world-traversable (0755) because nginx
/// started as root runs its workers as <c>nobody</c>, which must reach the body temp paths the master
/// creates (and chowns to it) inside; no <c>user root;</c> is needed.
/// </summary>
public sealed class NginxGateway : IAsyncDisposable
{
    private readonly Process _process = new();
    private readonly List<string> _output = [];

    private NginxGateway(IReadOnlyList<string> upstreams)
    {
        Root = Directory.CreateTempSubdirectory("cvrl-gateway-").FullName;
        if (!OperatingSystem.IsWindows())
        {
            File.SetUnixFileMode(Root, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute
                | UnixFileMode.GroupRead | UnixFileMode.GroupExecute | UnixFileMode.OtherRead | UnixFileMode.OtherExecute);
        }

        Upstreams = upstreams;
    }

    public string Root { get; }

    /// <summary>The replicas' host:port, in the upstream's order.</summary>
    public IReadOnlyList<string> Upstreams { get; }

    public Uri BaseAddress { get; private set; } = null!;

    public string AccessLogPath => Path.Combine(Root, "access.log");

    public string ErrorLogPath => Path.Combine(Root, "error.log");

    /// <summary>The access log's lines so far (nginx writes each request's line when it ends).</summary>
    public string[] AccessLog() => File.Exists(AccessLogPath) ? File.ReadAllLines(AccessLogPath) : [];

    public string ErrorLog() => File.Exists(ErrorLogPath) ? File.ReadAllText(ErrorLogPath) : "";

    /// <summary>Both logs and what nginx printed, for assertion messages.</summary>
    public string Diagnostics()
    {
        lock (_output)
        {
            return $"nginx access log:\n{string.Join('\n', AccessLog())}\nnginx error log:\n{ErrorLog()}\nnginx output:\n{string.Join('\n', _output)}";
        }
    }

    /// <summary>The template filled for these replicas and this port, as the README comment at its top says.</summary>
    public static string Fill(string template, string listen, IReadOnlyList<string> upstreams, string accessLog)
    {
        var lines = new List<string>();
        foreach (string line in template.Split('\n'))
        {
            if (line.Contains("${CVRL_SERVER}", StringComparison.Ordinal) && !line.TrimStart().StartsWith('#'))
            {
                lines.AddRange(upstreams.Select(u => line.Replace("${CVRL_SERVER}", u, StringComparison.Ordinal)));
            }
            else
            {
                lines.Add(line);
            }
        }

        return string.Join('\n', lines)
            .Replace("${CVRL_LISTEN}", listen, StringComparison.Ordinal)
            .Replace("${CVRL_ACCESS_LOG}", accessLog, StringComparison.Ordinal);
    }

    /// <summary>Starts nginx in front of <paramref name="upstreams"/> (host:port each) and waits until it proxies.</summary>
    public static async Task<NginxGateway> StartAsync(IReadOnlyList<string> upstreams)
    {
        var gateway = new NginxGateway(upstreams);
        try
        {
            await gateway.RunAsync();
            return gateway;
        }
        catch
        {
            await gateway.DisposeAsync();
            throw;
        }
    }

    /// <summary>A client of the gateway; <paramref name="source"/> is the local address it connects from (any of 127.0.0.0/8).</summary>
    public HttpClient Client(IPAddress? source = null) => ClientFor(BaseAddress, source);

    /// <summary>A client of <paramref name="baseAddress"/> whose connections come from <paramref name="source"/>.</summary>
    public static HttpClient ClientFor(Uri baseAddress, IPAddress? source = null)
    {
        var handler = new SocketsHttpHandler { PooledConnectionLifetime = TimeSpan.FromMinutes(1) };
        if (source is not null)
        {
            handler.ConnectCallback = async (context, cancellation) =>
            {
                var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
                try
                {
                    socket.Bind(new IPEndPoint(source, 0));
                    await socket.ConnectAsync(context.DnsEndPoint, cancellation);
                    return new NetworkStream(socket, ownsSocket: true);
                }
                catch
                {
                    socket.Dispose();
                    throw;
                }
            };
        }

        return new HttpClient(handler) { BaseAddress = baseAddress, Timeout = TimeSpan.FromMinutes(2) };
    }

    /// <summary>A loopback port nothing listens on now (bound and released).</summary>
    public static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            if (IsStarted() && !_process.HasExited)
            {
                // The master and its workers: SIGKILL to the tree, nothing to drain in a test.
                _process.Kill(entireProcessTree: true);
                await _process.WaitForExitAsync();
            }
        }
        finally
        {
            _process.Dispose();
            if (Directory.Exists(Root))
            {
                Directory.Delete(Root, recursive: true);
            }
        }
    }

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

    private async Task RunAsync()
    {
        string template = await File.ReadAllTextAsync(Path.Combine(AppContext.BaseDirectory, "Gateway", "cvrlserve.conf.template"));
        int port = FreePort();
        await File.WriteAllTextAsync(Path.Combine(Root, "cvrlserve.conf"), Fill(template, $"127.0.0.1:{port}", Upstreams, AccessLogPath));
        string temp(string name) => $"{name}_temp_path {Path.Combine(Root, name + "_temp")};";
        await File.WriteAllTextAsync(Path.Combine(Root, "nginx.conf"), $$"""
            worker_processes 1;
            error_log {{ErrorLogPath}} info;
            events { worker_connections 512; }
            http {
                {{temp("client_body")}}
                {{temp("proxy")}}
                {{temp("fastcgi")}}
                {{temp("uwsgi")}}
                {{temp("scgi")}}
                include {{Path.Combine(Root, "cvrlserve.conf")}};
            }
            """);

        var start = new ProcessStartInfo("nginx")
        {
            UseShellExecute = false,
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        foreach (string argument in new[] { "-c", Path.Combine(Root, "nginx.conf"), "-p", Root + "/", "-e", ErrorLogPath, "-g", $"daemon off; pid {Path.Combine(Root, "nginx.pid")};" })
        {
            start.ArgumentList.Add(argument);
        }

        _process.StartInfo = start;
        _process.OutputDataReceived += (_, e) => Append(e.Data);
        _process.ErrorDataReceived += (_, e) => Append(e.Data);
        _process.Start();
        _process.BeginOutputReadLine();
        _process.BeginErrorReadLine();

        BaseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}/");
        using var client = new HttpClient { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };
        var deadline = Stopwatch.StartNew();
        while (true)
        {
            if (_process.HasExited)
            {
                await _process.WaitForExitAsync();
                throw new InvalidOperationException($"nginx exited with {_process.ExitCode}.\n{Diagnostics()}");
            }

            try
            {
                // Not /health/ready: that would count as a request on a replica and mark a dead one down.
                using var socket = new TcpClient();
                await socket.ConnectAsync(IPAddress.Loopback, port);
                return;
            }
            catch (SocketException) when (deadline.Elapsed < TimeSpan.FromSeconds(20))
            {
                await Task.Delay(50);
            }
        }
    }

    private void Append(string? line)
    {
        if (line is not null)
        {
            lock (_output)
            {
                _output.Add(line);
            }
        }
    }
}
