using System.Net;
using System.Net.Http.Json;

namespace CvrlServe.Api.Tests.Hosting;

/// <summary>API keys (401/403), a service that requires keys for everything, and per-client rate limits (429).</summary>
public sealed class AccessTests
{
    private static readonly Uri Models = new("/v1/models", UriKind.Relative);
    private static readonly Uri Probes = new("/v1/probes", UriKind.Relative);

    [Fact]
    public async Task AdminEndpoints_NoKey401_ClientKey403_WrongKey401_AdminKeyPasses()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        var body = new { name = "p", modelId = "x", examples = Array.Empty<object>() };
        using (var anonymous = app.Client())
        using (var response = await anonymous.PostAsJsonAsync(Probes, body))
        {
            await Problem.AssertAsync(response, HttpStatusCode.Unauthorized, "unauthorized");
        }

        using (var client = app.Client(CvrlApiFactory.ClientKey))
        using (var response = await client.PostAsJsonAsync(Probes, body))
        {
            await Problem.AssertAsync(response, HttpStatusCode.Forbidden, "forbidden");
        }

        using (var wrong = app.Client("not-a-key-0123456789abcdef"))
        using (var response = await wrong.PostAsJsonAsync(Probes, body))
        {
            await Problem.AssertAsync(response, HttpStatusCode.Unauthorized, "unauthorized");
        }

        // The admin key gets past authorization to validation (the examples are empty).
        using var admin = app.Client();
        admin.DefaultRequestHeaders.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", CvrlApiFactory.AdminKey);
        using var validated = await admin.PostAsJsonAsync(Probes, body);
        await Problem.AssertAsync(validated, HttpStatusCode.BadRequest, "invalid-argument");
    }

    [Fact]
    public async Task RequireKey_EveryV1EndpointAndMetricsNeedOne_HealthDoesNot()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:Keys:RequireKey"] = "true" });
        await app.StartedAsync();
        using var anonymous = app.Client();
        using var refused = await anonymous.GetAsync(Models);
        await Problem.AssertAsync(refused, HttpStatusCode.Unauthorized, "unauthorized");
        using var health = await anonymous.GetAsync(new Uri("/health/live", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
        using var metrics = await anonymous.GetAsync(new Uri("/metrics", UriKind.Relative));
        await Problem.AssertAsync(metrics, HttpStatusCode.Unauthorized, "unauthorized");
        using var client = app.Client(CvrlApiFactory.ClientKey);
        using var allowed = await client.GetAsync(Models);
        Assert.Equal(HttpStatusCode.OK, allowed.StatusCode);
    }

    [Fact]
    public async Task RateLimit_PerClient_ThirdRequestIn429WithRetryAfter_AnotherKeyUnaffected()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?>
        {
            ["Cvrl:RateLimit:PermitsPerWindow"] = "2",
            ["Cvrl:RateLimit:WindowSeconds"] = "600",
        });
        await app.StartedAsync();
        using var client = app.Client(CvrlApiFactory.ClientKey);
        for (int i = 0; i < 2; i++)
        {
            using var ok = await client.GetAsync(Models);
            Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        }

        using var limited = await client.GetAsync(Models);
        await Problem.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate-limited");
        Assert.True(limited.Headers.RetryAfter?.Delta > TimeSpan.Zero);

        using var other = app.Client(CvrlApiFactory.AdminKey);
        using var otherOk = await other.GetAsync(Models);
        Assert.Equal(HttpStatusCode.OK, otherOk.StatusCode);
        // Health and metrics are not rate limited (a gateway polls them).
        using var health = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }
}
