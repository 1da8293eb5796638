using System.Net.Sockets;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// <c>CvrlServe.Api --health-check [URL]</c>: the container's HEALTHCHECK. The runtime base images carry no
/// curl or wget, so the app probes itself: one GET, exit 0 on a 2xx answer, 1 otherwise (refused, timed out,
/// unhealthy), 2 on a bad argument. Without a URL it asks <c>/health/live</c> on loopback at the first port of
/// <c>ASPNETCORE_HTTP_PORTS</c> (the .NET images set 8080), or 8080. Nothing of the server is started.
/// </summary>
public static class HealthProbe
{
    public const string Flag = "--health-check";
    public const int DefaultPort = 8080;
    public static readonly TimeSpan Timeout = TimeSpan.FromSeconds(5);

    public static bool IsRequested(string[] args) => args.Length > 0 && args[0] == Flag;

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        ArgumentNullException.ThrowIfNull(args);
        ArgumentNullException.ThrowIfNull(output);
        ArgumentNullException.ThrowIfNull(error);
        if (args.Length > 2 || (args.Length == 2 && !IsHttpUrl(args[1])))
        {
            error.WriteLine($"usage: CvrlServe.Api {Flag} [http://HOST:PORT/PATH]");
            return 2;
        }

        Uri target = args.Length == 2 ? new Uri(args[1]) : DefaultTarget(Environment.GetEnvironmentVariable("ASPNETCORE_HTTP_PORTS"));
        using var client = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false }) { Timeout = Timeout };
        try
        {
            using var response = await client.GetAsync(target, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            int status = (int)response.StatusCode;
            output.WriteLine($"{target}: {status}");
            return status is >= 200 and < 300 ? 0 : 1;
        }
        catch (Exception e) when (e is HttpRequestException or TaskCanceledException or SocketException)
        {
            error.WriteLine($"{target}: {(e is TaskCanceledException ? $"no answer within {Timeout.TotalSeconds:0} s" : e.Message)}");
            return 1;
        }
    }

    /// <summary><c>http://127.0.0.1:PORT/health/live</c> with the first valid port of an <c>ASPNETCORE_HTTP_PORTS</c> value (e.g. <c>8080;8081</c>).</summary>
    public static Uri DefaultTarget(string? httpPorts)
    {
        int port = DefaultPort;
        foreach (string part in (httpPorts ?? "").Split([';', ','], StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (int.TryParse(part, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int value) && value is > 0 and <= 65535)
            {
                port = value;
                break;
            }
        }

        return new Uri($"http://127.0.0.1:{port}/health/live");
    }

    private static bool IsHttpUrl(string value) =>
        Uri.TryCreate(value, UriKind.Absolute, out var uri) && uri.Scheme == Uri.UriSchemeHttp;
}
