using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// The gateway as deployed: nginx with <c>deploy/nginx/cvrlserve.conf.template</c> in front of real service
/// processes on loopback. What it proves: requests spread over the replicas, uploads pass up to the
/// service's limit and past it get a problem+json 413, the service partitions clients by the address nginx
/// saw (not the gateway's, not one the client wrote), a POST whose connection was refused goes to the other
/// replica, SIGTERM on a replica loses nothing, and SIGKILL fails only the requests that replica had, each
/// with nginx's problem+json 502 and none resent.
/// </summary>
[Collection(Name)]
public sealed partial class GatewayTests(GatewayFixture fixture, ITestOutputHelper output) : IClassFixture<GatewayFixture>
{
    public const string Name = "gateway";
    private const string EmbeddingsSeries = "http_request_duration_seconds_count{code=\"200\",method=\"POST\",controller=\"\",action=\"\",endpoint=\"/v1/embeddings\"}";

    [Fact]
    public async Task Embeddings_ThroughTheGateway_SpreadOverBothReplicas_AndCarryRequestIds()
    {
        var deployment = fixture.Deployment;
        double[] before = await Task.WhenAll(deployment.Replicas.Select(ServedAsync));
        using var client = deployment.Gateway.Client();
        const int Requests = 8;
        for (int i = 0; i < Requests; i++)
        {
            using var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(fixture.Videos.Path("red-0.mp4")));
            Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            Assert.Matches("^[0-9a-f]{32}$", response.Headers.GetValues("X-Request-Id").Single());
        }

        double[] served = (await Task.WhenAll(deployment.Replicas.Select(ServedAsync))).Zip(before, (a, b) => a - b).ToArray();
        output.WriteLine($"spread: {Requests} requests, per replica {string.Join(", ", served)}");
        Assert.Equal(Requests, served.Sum());
        Assert.All(served, s => Assert.True(s >= 1, $"a replica served none: {string.Join(", ", served)}"));

        // The client's request id is kept, returned and logged.
        string id = "gw-" + Guid.NewGuid().ToString("N");
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("v1/models", UriKind.Relative));
        request.Headers.Add("X-Request-Id", id);
        using var models = await client.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.Equal(id, models.Headers.GetValues("X-Request-Id").Single());
        Assert.Contains(await AccessAsync(deployment.Gateway, es => es.Any(e => e.RequestId == id)), e => e.RequestId == id);
    }

    [Fact]
    public async Task Uploads_40MBReachesTheService_300MBIsAProblem413FromTheGateway()
    {
        var gateway = fixture.Deployment.Gateway;
        using var client = gateway.Client();

        // 40 MB that is no video: the service's own 415 proves nginx passed the whole body on.
        string big = Path.Combine(gateway.Root, "big.mp4");
        var bytes = new byte[40_000_000];
        new Random(12).NextBytes(bytes);
        await File.WriteAllBytesAsync(big, bytes);
        using (var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(big)))
        {
            var problem = await Problem.AssertAsync(response, HttpStatusCode.UnsupportedMediaType, "unsupported-media");
            Assert.True(problem.TryGetProperty("traceId", out _), "the 415 came from the service");
        }

        File.Delete(big);
        var entry = (await AccessAsync(gateway, es => es.Any(e => e.Status == 415))).Last(e => e.Status == 415);
        Assert.Single(entry.Upstreams);

        // 300 MB: past client_max_body_size, nginx's 413, as problem+json.
        using var form = new MultipartFormDataContent();
        var zeros = new ZeroContent(300L * 1024 * 1024);
        zeros.Headers.ContentType = new MediaTypeHeaderValue("video/mp4");
        form.Add(zeros, "file", "huge.mp4");
        using (var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), form))
        {
            var problem = await Problem.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
            Assert.Matches("^[0-9a-f]{32}$", problem.GetProperty("requestId").GetString());
        }

        // nginx logs the 413 once it has read and dropped the rest of the body.
        Assert.Equal(["-"], (await AccessAsync(gateway, es => es.Any(e => e.Status == 413))).Last(e => e.Status == 413).Upstreams);
    }

    [Fact]
    public async Task ClientAddress_IsTheOneNginxSaw_NotTheGatewaysNorAForwardedForTheClientWrote()
    {
        // One replica, 2 requests per client per window, believing X-Forwarded-For from 127.0.0.1 only.
        await using var deployment = await Deployment.StartAsync(fixture.Videos, 1, new Dictionary<string, string?>
        {
            ["Cvrl__RateLimit__PermitsPerWindow"] = "2",
            ["Cvrl__RateLimit__WindowSeconds"] = "600",
        });
        var clientA = IPAddress.Parse("127.0.0.2");
        using var viaGatewayA = deployment.Gateway.Client(clientA);
        using var viaGatewayB = deployment.Gateway.Client(IPAddress.Parse("127.0.0.3"));
        using var direct = NginxGateway.ClientFor(deployment.Replicas[0].BaseAddress);

        // Client A writes a new X-Forwarded-For each time: nginx overwrites it with A's address.
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(viaGatewayA, "203.0.113.1"));
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(viaGatewayA, "203.0.113.2"));
        using (var limited = await ApiCalls.ModelsAsync(viaGatewayA, "203.0.113.3"))
        {
            // The service's 429 passes through the gateway with its Retry-After.
            await Problem.AssertAsync(limited, HttpStatusCode.TooManyRequests, "rate-limited");
            Assert.NotNull(limited.Headers.RetryAfter);
        }

        // Client B comes through the same gateway (same 127.0.0.1 toward the replica) and is not limited:
        // the partition is the client's address, not the gateway's.
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(viaGatewayB, null));

        // The replica believes 127.0.0.1's header: "127.0.0.2" is exactly the partition A used up ...
        Assert.Equal(HttpStatusCode.TooManyRequests, await ApiCalls.ModelsStatusAsync(direct, clientA.ToString()));
        // ... while the spoofed addresses A wrote were never partitions, and a fresh address is one.
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(direct, "203.0.113.1"));
        Assert.Equal(HttpStatusCode.OK, await ApiCalls.ModelsStatusAsync(direct, "203.0.113.1"));
        Assert.Equal(HttpStatusCode.TooManyRequests, await ApiCalls.ModelsStatusAsync(direct, "203.0.113.1"));
    }

    [Fact]
    public async Task Post_ConnectionRefusedByTheFirstReplica_IsSentToTheOther()
    {
        // The first upstream is a port nothing listens on: nginx's round robin tries it first.
        var live = fixture.Deployment.Replicas[0];
        string dead = $"127.0.0.1:{NginxGateway.FreePort().ToString(CultureInfo.InvariantCulture)}";
        await using var gateway = await NginxGateway.StartAsync([dead, live.BaseAddress.Authority]);
        using var client = gateway.Client();
        for (int i = 0; i < 3; i++)
        {
            using var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(fixture.Videos.Path("blue-0.mp4")));
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{await response.Content.ReadAsStringAsync()}\n{gateway.Diagnostics()}");
        }

        var entries = await AccessAsync(gateway, es => es.Length >= 3);
        Assert.Equal(3, entries.Count(e => e.Status == 200));
        var retried = Assert.Single(entries, e => e.Upstreams.Length > 1);
        Assert.Equal([dead, live.BaseAddress.Authority], retried.Upstreams);
        Assert.Equal(["502", "200"], retried.UpstreamStatuses);
        Assert.Contains("connect() failed (111: Connection refused)", gateway.ErrorLog(), StringComparison.Ordinal);
        // Then passive health: the dead one is skipped for fail_timeout, no more retries.
        Assert.All(entries.Where(e => e != retried), e => Assert.Equal([live.BaseAddress.Authority], e.Upstreams));
    }

    [Fact]
    public async Task Sigterm_OnOneReplicaDuringTraffic_EveryRequestSucceeds()
    {
        await using var deployment = await Deployment.StartAsync(fixture.Videos, 2, new Dictionary<string, string?>());
        var (victim, survivor) = (deployment.Replicas[0], deployment.Replicas[1]);
        var results = await TrafficAsync(deployment, "red-1.mp4", [], async () =>
        {
            await victim.TerminateAsync();
        });

        var entries = (await AccessAsync(deployment.Gateway, es => es.Length >= results.Length)).Where(e => e.Request.StartsWith("POST /v1/embeddings", StringComparison.Ordinal)).ToArray();
        string error = deployment.Gateway.ErrorLog();
        int refused = Errors(error, "connect() failed (111");
        var retried = entries.Count(e => e.Upstreams.Length > 1);
        output.WriteLine($"SIGTERM: {results.Length} requests, statuses {Statuses(results)}, retried after a refused connect {retried}, " +
            $"refused connects {refused}, served by the stopped replica {entries.Count(e => e.Upstreams[^1] == victim.BaseAddress.Authority)}, by the other {entries.Count(e => e.Upstreams[^1] == survivor.BaseAddress.Authority)}");
        Assert.True(results.All(r => r.Status == HttpStatusCode.OK), $"{Statuses(results)}\n{deployment.Diagnostics()}");
        Assert.True(await victim.WaitForExitAsync(TimeSpan.FromSeconds(45)) == 0, victim.Log);
        Assert.Equal(results.Length, entries.Length);
        Assert.Equal(retried, refused);
        Assert.Equal(entries.Count(e => e.Upstreams[^1] == survivor.BaseAddress.Authority), await ServedAsync(survivor));
    }

    [Fact]
    public async Task Sigkill_OnOneReplicaDuringTraffic_OnlyItsInFlightRequestsFail_WithAProblem502_NoneResent()
    {
        await using var deployment = await Deployment.StartAsync(fixture.Videos, 2, new Dictionary<string, string?>
        {
            // Request logging, so the test can kill the replica while it holds a request.
            ["Logging__LogLevel__Microsoft.AspNetCore.Hosting.Diagnostics"] = "Information",
        });
        var (victim, survivor) = (deployment.Replicas[0], deployment.Replicas[1]);
        var results = await TrafficAsync(deployment, "moving.mp4", [("clips", "8")], async () =>
        {
            var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(30);
            while (InFlight(victim) < 1 && DateTime.UtcNow < deadline)
            {
                await Task.Delay(5);
            }

            await victim.KillAsync();
        });

        var entries = (await AccessAsync(deployment.Gateway, es => es.Length >= results.Length)).Where(e => e.Request.StartsWith("POST /v1/embeddings", StringComparison.Ordinal)).ToArray();
        string error = deployment.Gateway.ErrorLog();
        int refused = Errors(error, "connect() failed (111");
        int failedAfterSending = Errors(error, "while reading response header from upstream") + Errors(error, "while sending request to upstream");
        int ok = results.Count(r => r.Status == HttpStatusCode.OK);
        int badGateway = results.Count(r => r.Status == HttpStatusCode.BadGateway);
        int retried = entries.Count(e => e.Upstreams.Length > 1);
        output.WriteLine($"SIGKILL: {results.Length} requests, statuses {Statuses(results)}, retried after a refused connect {retried}, " +
            $"refused connects {refused}, failed after sending {failedAfterSending}, served by the killed replica {entries.Count(e => e.Status == 200 && e.Upstreams[^1] == victim.BaseAddress.Authority)}, " +
            $"by the other {entries.Count(e => e.Status == 200 && e.Upstreams[^1] == survivor.BaseAddress.Authority)}");
        string diagnostics = $"{Statuses(results)}\n{deployment.Diagnostics()}";

        // Every request ends: 200, or nginx's problem+json 502 for those the killed replica held.
        Assert.True(ok + badGateway == results.Length, diagnostics);
        Assert.True(badGateway >= 1, "no request was in flight on the killed replica\n" + diagnostics);
        foreach (var (_, body, contentType) in results.Where(r => r.Status == HttpStatusCode.BadGateway))
        {
            Assert.Equal("application/problem+json", contentType);
            Assert.Equal("urn:cvrlserve:problem:bad-gateway", JsonDocument.Parse(body).RootElement.GetProperty("type").GetString());
        }

        // Nothing resent after it was sent: each 502 is one try on the killed replica, and each failure
        // after sending in nginx's error log is one 502; the only retries follow refused connections.
        Assert.Equal(results.Length, entries.Length);
        Assert.All(entries.Where(e => e.Status == 502), e => Assert.Equal([victim.BaseAddress.Authority], e.Upstreams));
        Assert.True(failedAfterSending == badGateway, diagnostics);
        Assert.True(retried == refused, diagnostics);
        Assert.All(entries.Where(e => e.Upstreams.Length > 1), e => Assert.Equal(200, e.Status));
        // The survivor ran each request it was given once.
        Assert.Equal(entries.Count(e => e.Upstreams[^1] == survivor.BaseAddress.Authority), await ServedAsync(survivor));
    }

    private static int InFlight(KestrelServer server)
    {
        string log = server.Log;
        return Count(log, "Request starting HTTP/1.1 POST") - Count(log, "Request finished HTTP/1.1 POST");
    }

    /// <summary>The [error] lines of nginx's error log that contain <paramref name="fragment"/> (one per failed try; [warn] lines follow some).</summary>
    private static int Errors(string errorLog, string fragment) =>
        errorLog.Split('\n').Count(l => l.Contains(" [error] ", StringComparison.Ordinal) && l.Contains(fragment, StringComparison.Ordinal));

    /// <summary>The access log once <paramref name="done"/> holds for it (nginx writes a line when the request ends, after the response), or after 10 s.</summary>
    private static async Task<AccessEntry[]> AccessAsync(NginxGateway gateway, Func<AccessEntry[], bool> done)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (true)
        {
            var entries = Access(gateway);
            if (done(entries) || DateTime.UtcNow > deadline)
            {
                return entries;
            }

            await Task.Delay(20);
        }
    }

    private static int Count(string text, string fragment)
    {
        int count = 0;
        for (int at = text.IndexOf(fragment, StringComparison.Ordinal); at >= 0; at = text.IndexOf(fragment, at + fragment.Length, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    private static string Statuses((HttpStatusCode Status, string Body, string? ContentType)[] results) =>
        string.Join(", ", results.GroupBy(r => (int)r.Status).OrderBy(g => g.Key).Select(g => $"{g.Key}×{g.Count()}"));

    /// <summary>
    /// 40 embedding POSTs of <paramref name="video"/> through the gateway, 4 at a time; after the 8th
    /// has ended, <paramref name="disrupt"/> runs alongside the rest.
    /// </summary>
    private static async Task<(HttpStatusCode Status, string Body, string? ContentType)[]> TrafficAsync(
        Deployment deployment, string video, (string Name, string Value)[] fields, Func<Task> disrupt)
    {
        const int Total = 40, Concurrency = 4, DisruptAfter = 8;
        var results = new (HttpStatusCode, string, string?)[Total];
        int next = -1, ended = 0;
        var disrupted = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        using var client = deployment.Gateway.Client();
        var workers = Enumerable.Range(0, Concurrency).Select(_ => Task.Run(async () =>
        {
            for (int i = Interlocked.Increment(ref next); i < Total; i = Interlocked.Increment(ref next))
            {
                using var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(deployment.Videos.Path(video), fields));
                results[i] = (response.StatusCode, await response.Content.ReadAsStringAsync(), response.Content.Headers.ContentType?.MediaType);
                Interlocked.Increment(ref ended);
            }
        })).ToArray();
        var disruption = Task.Run(async () =>
        {
            while (Volatile.Read(ref ended) < DisruptAfter && !workers.All(w => w.IsCompleted))
            {
                await Task.Delay(5);
            }

            await disrupt();
        });
        await Task.WhenAll(workers.Append(disruption));
        return results;
    }

    private static async Task<double> ServedAsync(KestrelServer replica)
    {
        using var client = replica.Client();
        return MetricsText.Value(await client.GetStringAsync(new Uri("metrics", UriKind.Relative)), EmbeddingsSeries);
    }

    private static AccessEntry[] Access(NginxGateway gateway) => gateway.AccessLog().Select(line =>
    {
        var match = AccessLine().Match(line);
        Assert.True(match.Success, $"unexpected access log line: {line}");
        static string[] List(string value) => value.Split(", ");
        return new AccessEntry(match.Groups["request"].Value, int.Parse(match.Groups["status"].Value, CultureInfo.InvariantCulture), match.Groups["rid"].Value,
            List(match.Groups["upstream"].Value), List(match.Groups["ustatus"].Value));
    }).ToArray();

    [GeneratedRegex("""^\S+ \[[^\]]+\] "(?<request>[^"]*)" (?<status>\d+) \d+ rid=(?<rid>\S+) upstream=\[(?<upstream>[^\]]*)\] upstream_status=\[(?<ustatus>[^\]]*)\]""")]
    private static partial Regex AccessLine();

    private sealed record AccessEntry(string Request, int Status, string RequestId, string[] Upstreams, string[] UpstreamStatuses);

    /// <summary>A body of <c>length</c> zero bytes, written without holding it in memory.</summary>
    private sealed class ZeroContent(long length) : HttpContent
    {
        protected override async Task SerializeToStreamAsync(Stream stream, TransportContext? context)
        {
            var chunk = new byte[1 << 20];
            for (long left = length; left > 0; left -= chunk.Length)
            {
                await stream.WriteAsync(chunk.AsMemory(0, (int)Math.Min(chunk.Length, left)));
            }
        }

        protected override bool TryComputeLength(out long length1)
        {
            length1 = length;
            return true;
        }
    }
}

/// <summary>N service processes (loopback, believing X-Forwarded-For from 127.0.0.1) and nginx in front of them.</summary>
public sealed class Deployment : IAsyncDisposable
{
    private Deployment(ApiVideos videos, KestrelServer[] replicas, NginxGateway gateway) => (Videos, Replicas, Gateway) = (videos, replicas, gateway);

    public ApiVideos Videos { get; }

    public IReadOnlyList<KestrelServer> Replicas { get; }

    public NginxGateway Gateway { get; }

    public static async Task<Deployment> StartAsync(ApiVideos videos, int replicas, IReadOnlyDictionary<string, string?> settings)
    {
        var environment = new Dictionary<string, string?>(settings) { ["Cvrl__KnownProxies__0"] = "127.0.0.1" };
        var starts = Enumerable.Range(0, replicas).Select(_ => KestrelServer.StartAsync(environment)).ToArray();
        try
        {
            await Task.WhenAll(starts);
            var servers = starts.Select(s => s.Result).ToArray();
            var gateway = await NginxGateway.StartAsync(servers.Select(s => s.BaseAddress.Authority).ToArray());
            return new Deployment(videos, servers, gateway);
        }
        catch
        {
            foreach (var start in starts.Where(s => s.IsCompletedSuccessfully))
            {
                await start.Result.DisposeAsync();
            }

            throw;
        }
    }

    public string Diagnostics() => $"{Gateway.Diagnostics()}\n{string.Join('\n', Replicas.Select((r, i) => $"replica {i} log:\n{r.Log}"))}";

    public async ValueTask DisposeAsync()
    {
        // Every process is stopped and every folder deleted even when one of them fails to.
        var failures = new List<Exception>();
        foreach (IAsyncDisposable part in Replicas.Cast<IAsyncDisposable>().Prepend(Gateway))
        {
            try
            {
                await part.DisposeAsync();
            }
            catch (Exception e)
            {
                failures.Add(e);
            }
        }

        if (failures.Count > 0)
        {
            throw new AggregateException(failures);
        }
    }
}

/// <summary>The videos and one two-replica deployment the non-destructive gateway tests share.</summary>
public sealed class GatewayFixture : IAsyncLifetime
{
    public ApiVideos Videos { get; private set; } = null!;

    public Deployment Deployment { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        Videos = await Task.Run(() => new ApiVideos());
        try
        {
            Deployment = await Deployment.StartAsync(Videos, 2, new Dictionary<string, string?>());
        }
        catch
        {
            Videos.Dispose();
            throw;
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Deployment is not null)
            {
                await Deployment.DisposeAsync();
            }
        }
        finally
        {
            Videos?.Dispose();
        }
    }
}

[CollectionDefinition(GatewayTests.Name, DisableParallelization = true)]
public sealed class SerialGateway;
