using System.Net;
using System.Net.Sockets;
using CvrlServe.Api.Hosting;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// The container's HEALTHCHECK mode (<c>CvrlServe.Api --health-check [URL]</c>) against a real server on
/// loopback: 2xx is healthy (0), any other answer or no answer is unhealthy (1), a bad argument is a usage error (2).
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed class HealthProbeTests(EndToEndServer fixture)
{
    [Fact]
    public async Task RunAsync_LiveServer_ExitsZero()
    {
        var (code, output, _) = await RunAsync(new Uri(fixture.Server.BaseAddress, "health/live").ToString());

        Assert.Equal(0, code);
        Assert.Contains("200", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_ServerAnswersNotFound_ExitsOne()
    {
        var (code, output, _) = await RunAsync(new Uri(fixture.Server.BaseAddress, "health/no-such-check").ToString());

        Assert.Equal(1, code);
        Assert.Contains("404", output, StringComparison.Ordinal);
    }

    [Fact]
    public async Task RunAsync_NothingListens_ExitsOne()
    {
        int port;
        using (var listener = new TcpListener(IPAddress.Loopback, 0))
        {
            listener.Start();
            port = ((IPEndPoint)listener.LocalEndpoint).Port;
        }

        var (code, _, error) = await RunAsync($"http://127.0.0.1:{port}/health/live");

        Assert.Equal(1, code);
        Assert.NotEmpty(error);
    }

    [Theory]
    [InlineData("file:///etc/passwd")]
    [InlineData("not a url")]
    [InlineData("http://127.0.0.1:1/health/live", "extra")]
    public async Task RunAsync_BadArguments_ExitsTwo(params string[] arguments)
    {
        var (code, _, error) = await RunAsync(arguments);

        Assert.Equal(2, code);
        Assert.Contains("usage", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(null, 8080)]
    [InlineData("", 8080)]
    [InlineData("8081", 8081)]
    [InlineData("8082;8083", 8082)]
    [InlineData("junk;9090", 9090)]
    [InlineData("70000", 8080)]
    [InlineData("-1", 8080)]
    public void DefaultTarget_HttpPortsSetting_FirstValidPortOnLoopback(string? httpPorts, int expectedPort)
    {
        var target = HealthProbe.DefaultTarget(httpPorts);

        Assert.Equal(new Uri($"http://127.0.0.1:{expectedPort}/health/live"), target);
    }

    private static async Task<(int Code, string Output, string Error)> RunAsync(params string[] arguments)
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        int code = await HealthProbe.RunAsync([HealthProbe.Flag, .. arguments], output, error);
        return (code, output.ToString(), error.ToString());
    }
}
