using System.Net;
using System.Net.Sockets;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// <c>Cvrl:MetricsPort</c> on a real server that requires keys (as in Kubernetes, where the autoscaler's
/// scraper has none): the metrics port serves <c>/metrics</c> and health without a key and nothing else;
/// the client port never serves <c>/metrics</c>, whatever the Host header says.
/// </summary>
public sealed class MetricsPortTests
{
    [Fact]
    public async Task MetricsPort_OpenScrapeThere_NothingElseThere_NoScrapeOnTheClientPort()
    {
        int metricsPort = FreePort();
        await using var server = await KestrelServer.StartAsync(new Dictionary<string, string?>
        {
            ["Cvrl__Keys__RequireKey"] = "true",
            ["Cvrl__MetricsPort"] = metricsPort.ToString(System.Globalization.CultureInfo.InvariantCulture),
        });
        Assert.NotEqual(metricsPort, server.BaseAddress.Port);
        using var scraper = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{metricsPort}/"), Timeout = TimeSpan.FromSeconds(30) };

        // The scraper: no key, gets the exposition text.
        foreach (string spelling in new[] { "metrics", "metrics/" })
        {
            using var scrape = await scraper.GetAsync(new Uri(spelling, UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, scrape.StatusCode);
            Assert.Contains("cvrlserve_requests_in_flight", await scrape.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        using (var ready = await scraper.GetAsync(new Uri("health/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        }

        // The API is not reachable through the metrics port, even with a key.
        using (var keyed = new HttpClient { BaseAddress = scraper.BaseAddress })
        {
            keyed.DefaultRequestHeaders.Add("X-Api-Key", KestrelServer.ClientKey);
            foreach (string path in new[] { "v1/models", "swagger/v1/swagger.json", "swagger/index.html", "no-such-path" })
            {
                using var refused = await keyed.GetAsync(new Uri(path, UriKind.Relative));
                await Problem.AssertAsync(refused, HttpStatusCode.NotFound, "not-found");
            }
        }

        // The client port: the API needs a key as before; /metrics is not there, with a key or a forged Host.
        using var anonymous = server.Client();
        using (var models = await anonymous.GetAsync(new Uri("v1/models", UriKind.Relative)))
        {
            await Problem.AssertAsync(models, HttpStatusCode.Unauthorized, "unauthorized");
        }

        using var client = server.Client(KestrelServer.ClientKey);
        using (var models = await client.GetAsync(new Uri("v1/models", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        }

        // Every spelling routing accepts for the scrape, with a key and without.
        foreach (var caller in new[] { client, anonymous })
        {
            foreach (string spelling in new[] { "metrics", "metrics/", "METRICS", "Metrics/" })
            {
                using var keyedScrape = await caller.GetAsync(new Uri(spelling, UriKind.Relative));
                await Problem.AssertAsync(keyedScrape, HttpStatusCode.NotFound, "not-found");
            }
        }

        using var forged = new HttpRequestMessage(HttpMethod.Get, new Uri(server.BaseAddress, "metrics"));
        forged.Headers.Host = $"127.0.0.1:{metricsPort}";
        using (var forgedScrape = await anonymous.SendAsync(forged))
        {
            Assert.Equal(HttpStatusCode.NotFound, forgedScrape.StatusCode);
        }

        using var health = await anonymous.GetAsync(new Uri("health/live", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, health.StatusCode);
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
