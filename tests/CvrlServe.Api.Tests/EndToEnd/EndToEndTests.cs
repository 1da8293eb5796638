using System.Net;
using System.Text.Json;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// The service as it is deployed: its own process (<see cref="KestrelServer"/>), real sockets on loopback,
/// real signals. What in-memory tests cannot show: the published app starts from its output folder with
/// settings from the environment, shuts down gracefully on SIGTERM, and believes X-Forwarded-For only from
/// the proxies it is told about.
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed class EndToEndTests(EndToEndServer fixture)
{
    private static readonly TimeSpan LogWait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Embed_OverLoopback_A64DimensionalUnitEmbeddingOfTheServedModel()
    {
        using var client = fixture.Server.Client();
        using var models = JsonDocument.Parse(await client.GetStringAsync(new Uri("v1/models", UriKind.Relative)));
        var model = models.RootElement.GetProperty("models").EnumerateArray().Single();
        Assert.Equal(KestrelServer.Model, model.GetProperty("name").GetString());
        Assert.True(model.GetProperty("ready").GetBoolean());

        var json = await EndToEndServer.EmbedAsync(client, fixture.Videos.Path("red-0.mp4"));

        var embedding = json.GetProperty("embedding").EnumerateArray().Select(v => v.GetDouble()).ToArray();
        Assert.Equal(64, json.GetProperty("dimension").GetInt32());
        Assert.Equal(64, embedding.Length);
        Assert.Equal(1.0, Math.Sqrt(embedding.Sum(v => v * v)), 4);
        Assert.Equal(KestrelServer.Model, json.GetProperty("model").GetString());
        Assert.Equal(model.GetProperty("modelId").GetString(), json.GetProperty("modelId").GetString());
        Assert.Equal(new FileInfo(fixture.Videos.Path("red-0.mp4")).Length, json.GetProperty("bytes").GetInt64());
    }

    [Fact]
    public async Task TrainProbeFromServedEmbeddings_ThenClassifyVideos_RedIsRedAndBlueIsBlue()
    {
        using (var anonymous = fixture.Server.Client())
        {
            // Training is an admin operation, over the wire too.
            using var refused = await anonymous.PostAsync(new Uri("v1/probes", UriKind.Relative), JsonContent("""{"name":"x","modelId":"y","examples":[]}"""));
            Assert.Equal(HttpStatusCode.Unauthorized, refused.StatusCode);
        }

        var trained = await fixture.TrainColorProbeAsync("colors-e2e");
        Assert.Equal(["blue", "red"], trained.GetProperty("probe").GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).Order().ToArray());

        using var client = fixture.Server.Client();
        foreach (string label in new[] { "red", "blue" })
        {
            using var response = await client.PostAsync(new Uri("v1/classify", UriKind.Relative),
                CvrlApiFactory.Form(fixture.Videos.Path($"{label}-0.mp4"), ("probe", "colors-e2e"), ("all", "true")));
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, body);
            var json = JsonDocument.Parse(body).RootElement;
            var labels = json.GetProperty("labels").EnumerateArray().ToArray();
            Assert.Equal(label, labels[0].GetProperty("label").GetString());
            Assert.True(labels[0].GetProperty("probability").GetDouble() > 0.5, body);
            Assert.Equal(2, json.GetProperty("classes").GetArrayLength());
        }
    }

    [Fact]
    public async Task Sigterm_WithAnUploadInFlight_TheRequestStillCompletesAndTheProcessExitsWithZero()
    {
        // Request logging on, so the server says when the request has started.
        await using var server = await KestrelServer.StartAsync(new Dictionary<string, string?>
        {
            ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
        });
        using var client = server.Client();
        using var form = CvrlApiFactory.Form(fixture.Videos.Path("moving.mp4"), ("clips", "32"));
        using var content = await HeldBackContent.FromAsync(form, tailBytes: 4096);
        try
        {
            var request = client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), content);

            // Each step waits for the event that proves the one before: the request is in the app, SIGTERM
            // was taken, only then does the rest of the upload go.
            await server.WaitForLogAsync("Request starting HTTP/1.1 POST " + server.BaseAddress + "v1/embeddings", LogWait);
            await server.TerminateAsync();
            await server.WaitForLogAsync("Application is shutting down...", LogWait);
            Assert.False(request.IsCompleted, "the request ended before its body was sent");
            content.Release();

            using var response = await request;
            string body = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{(int)response.StatusCode} {body}\n{server.Log}");
            using var json = JsonDocument.Parse(body);
            Assert.Equal(64, json.RootElement.GetProperty("embedding").GetArrayLength());
            Assert.Equal(new FileInfo(fixture.Videos.Path("moving.mp4")).Length, json.RootElement.GetProperty("bytes").GetInt64());
        }
        finally
        {
            content.Release();
        }

        int? exitCode = await server.WaitForExitAsync(TimeSpan.FromSeconds(45));
        Assert.True(exitCode == 0, $"exit code {exitCode?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "(still running)"}\n{server.Log}");
        Assert.Empty(Directory.GetFiles(Path.Combine(server.DataFolder, "uploads")));
    }

    // With no proxy configured, X-Forwarded-For must be ignored: ASP.NET's middleware, given empty known
    // lists, believes every sender, and a client would escape its rate limit by changing the header.
    [Fact]
    public async Task RateLimit_NoKnownProxies_ForwardedForIsIgnoredAndLoopbackIsOneClient()
    {
        await using var server = await RateLimitedServerAsync(knownProxy: null);
        using var client = server.Client();

        // Three "clients" by their X-Forwarded-For, all one client to a server that trusts no proxy.
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(client, "203.0.113.1"));
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(client, "203.0.113.2"));
        using var limited = await ApiCalls.ModelsAsync(client, "203.0.113.3");
        await Problem.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.NotNull(limited.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.TooManyRequests, await ApiCalls.ModelsStatusAsync(client, forwardedFor: null));
    }

    [Theory]
    [InlineData("127.0.0.1")]
    [InlineData("127.0.0.0/8")]
    public async Task RateLimit_LoopbackIsAKnownProxy_ForwardedForIsTheClient(string knownProxy)
    {
        await using var server = await RateLimitedServerAsync(knownProxy);
        using var client = server.Client();

        // Six requests from loopback, two per forwarded address: each address has its own window.
        foreach (string address in new[] { "203.0.113.1", "203.0.113.2", "203.0.113.3" })
        {
            Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(client, address));
            Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(client, address));
        }

        // The limiter is on: an address past its two permits is refused, another address is not.
        using var limited = await ApiCalls.ModelsAsync(client, "203.0.113.2");
        await Problem.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.NotNull(limited.Headers.RetryAfter);
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(client, "198.51.100.7"));
    }

    private static Task<KestrelServer> RateLimitedServerAsync(string? knownProxy) => KestrelServer.StartAsync(new Dictionary<string, string?>
    {
        ["Cvrl__RateLimit__PermitsPerWindow"] = "2",
        ["Cvrl__RateLimit__WindowSeconds"] = "600",
        ["Cvrl__KnownProxies__0"] = knownProxy,
    });

    private static StringContent JsonContent(string json) => new(json, System.Text.Encoding.UTF8, "application/json");
}
