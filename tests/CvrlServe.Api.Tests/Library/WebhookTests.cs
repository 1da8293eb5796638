using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using CvrlServe.Api.Library;
using CvrlServe.Api.Tests.Jobs;
using Microsoft.AspNetCore.Http;

namespace CvrlServe.Api.Tests.Library;

/// <summary>
/// Webhook delivery against a real HTTP receiver on 127.0.0.1, reached through test host names that the
/// resolver seam maps; the connect seam refuses (and records) any address that is not loopback.
/// </summary>
public sealed partial class WebhookTests : IAsyncLifetime
{
    private const string Secret = "test-secret-Ω-not-for-production";
    private const string Host = "hooks.test";
    private static readonly byte[] Body = Encoding.UTF8.GetBytes("""{"job":"0123456789abcdef0123456789abcdef","state":"succeeded"}""");

    private readonly ListLogger<WebhookSender> _log = new();
    private readonly LoopbackOnlyConnector _connector = new();
    private readonly ManualTime _time = new(new DateTimeOffset(2026, 3, 1, 12, 0, 0, TimeSpan.Zero));
    private readonly List<WebhookSender> _senders = [];
    private WebhookReceiver _receiver = null!;

    public async Task InitializeAsync() => _receiver = await WebhookReceiver.StartAsync();

    public async Task DisposeAsync()
    {
        foreach (var sender in _senders)
        {
            sender.Dispose();
        }

        await _receiver.DisposeAsync();
        Assert.Empty(_connector.Violations);
        Assert.DoesNotContain(_log.Entries, e => e.Message.Contains(Secret, StringComparison.Ordinal) || e.Message.Contains("succeeded", StringComparison.Ordinal));
    }

    private string HookUrl => $"http://{Host}:{_receiver.Port}/hook";

    private WebhookSender NewSender(IHostResolver? resolver = null, bool allowLoopback = true, string[]? hosts = null, string? secret = Secret,
        int maxAttempts = 5, double timeoutSeconds = 5)
    {
        var options = new WebhookOptions
        {
            AllowedHosts = [.. hosts ?? [Host, "*.example.com"]],
            Secret = secret,
            MaxAttempts = maxAttempts,
            FirstRetrySeconds = 0.01,
            TimeoutSeconds = timeoutSeconds,
            AllowLoopbackForTests = allowLoopback,
        };
        resolver ??= new TableResolver(new Dictionary<string, IPAddress[]> { [Host] = [IPAddress.Loopback] });
        var sender = new WebhookSender(options, resolver, _log, _time, _connector.ConnectAsync);
        _senders.Add(sender);
        return sender;
    }

    private static Func<int, HttpContext, Task> Statuses(params int[] statuses) => (hit, context) =>
    {
        context.Response.StatusCode = statuses[Math.Min(hit, statuses.Length) - 1];
        return Task.CompletedTask;
    };

    [Fact]
    public async Task Deliver_SignedJsonPost_SignatureVerifiesWithAnIndependentHmac()
    {
        var sender = NewSender();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_123", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(true, 1, 200, null), delivery);
        var request = Assert.Single(_receiver.Requests);
        Assert.Equal("POST", request.Method);
        Assert.Equal("/hook", request.Path);
        Assert.Equal("application/json", request.ContentType);
        Assert.Equal("evt_123", request.EventId);
        Assert.Equal(Body, request.Body);

        long now = _time.Now.ToUnixTimeSeconds();
        string t = now.ToString(CultureInfo.InvariantCulture);
        byte[] signed = [.. Encoding.UTF8.GetBytes(t + "."), .. request.Body];
        string expected = $"t={t},v1={Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), signed))}";
        Assert.Equal(expected, request.Signature);
        Assert.Equal(expected, WebhookSender.Sign(Secret, now, Body));
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, _receiver.Port)], _connector.Connects);
    }

    [Fact]
    public async Task Deliver_TwoServiceUnavailable_DeliveredOnTheThirdAttempt()
    {
        _receiver.Respond = Statuses(503, 503, 204);
        var sender = NewSender();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_retry", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(true, 3, 204, null), delivery);
        Assert.Equal(3, _receiver.Requests.Count);
        Assert.All(_receiver.Requests, r => Assert.Equal(Body, r.Body));
    }

    [Theory]
    [InlineData(400)]
    [InlineData(404)]
    [InlineData(410)]
    public async Task Deliver_ClientError_NotRetried(int status)
    {
        _receiver.Respond = Statuses(status, 200);
        var sender = NewSender();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_bad", Body, CancellationToken.None);

        Assert.False(delivery.Delivered);
        Assert.Equal(1, delivery.Attempts);
        Assert.Equal(status, delivery.LastStatus);
        Assert.Single(_receiver.Requests);
    }

    [Fact]
    public async Task Deliver_ServerErrorsThroughout_GivesUpAfterMaxAttempts()
    {
        _receiver.Respond = Statuses(500);
        var sender = NewSender(maxAttempts: 3);

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_down", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(false, 3, 500, "The webhook answered HTTP 500."), delivery);
        Assert.Equal(3, _receiver.Requests.Count);
    }

    [Fact]
    public async Task Deliver_TooManyRequests_WaitsForRetryAfter()
    {
        _receiver.Respond = (hit, context) =>
        {
            context.Response.StatusCode = hit == 1 ? 429 : 200;
            if (hit == 1)
            {
                context.Response.Headers.RetryAfter = "1";
            }

            return Task.CompletedTask;
        };
        var sender = NewSender();
        var clock = Stopwatch.StartNew();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_429", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(true, 2, 200, null), delivery);
        Assert.True(clock.Elapsed >= TimeSpan.FromSeconds(0.9), $"retried after {clock.Elapsed}, before the Retry-After of 1 s");
    }

    [Fact]
    public async Task Deliver_AttemptTimesOut_RetriedAndDelivered()
    {
        _receiver.Respond = async (hit, context) =>
        {
            if (hit == 1)
            {
                await Task.Delay(TimeSpan.FromSeconds(10), context.RequestAborted).ContinueWith(_ => { }, TaskScheduler.Default);
            }

            context.Response.StatusCode = 200;
        };
        var sender = NewSender(timeoutSeconds: 0.3);

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_slow", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(true, 2, 200, null), delivery);
    }

    [Fact]
    public async Task Deliver_NothingListening_RetriedThenNotDelivered()
    {
        using var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        int closedPort = ((IPEndPoint)probe.LocalEndPoint!).Port;
        probe.Close();
        var sender = NewSender(maxAttempts: 3);

        var delivery = await sender.DeliverAsync(sender.Validate($"http://{Host}:{closedPort}/hook"), "evt_closed", Body, CancellationToken.None);

        Assert.Equal(new WebhookDelivery(false, 3, null, "The webhook could not be reached."), delivery);
        Assert.Equal(3, _connector.Connects.Count);
    }

    [Fact]
    public async Task Deliver_CallerCancelsDuringBackoff_Throws()
    {
        _receiver.Respond = Statuses(503);
        var options = new WebhookOptions { AllowedHosts = [Host], Secret = Secret, FirstRetrySeconds = 30, AllowLoopbackForTests = true };
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { [Host] = [IPAddress.Loopback] });
        using var sender = new WebhookSender(options, resolver, _log, _time, _connector.ConnectAsync);
        using var cancel = new CancellationTokenSource(TimeSpan.FromSeconds(0.5));

        await Assert.ThrowsAnyAsync<OperationCanceledException>(() => sender.DeliverAsync(sender.Validate(HookUrl), "evt_cancel", Body, cancel.Token));
        Assert.Single(_receiver.Requests);
    }

    [Fact]
    public async Task Deliver_RedirectAnswer_NotFollowed()
    {
        _receiver.Respond = (hit, context) =>
        {
            context.Response.StatusCode = 302;
            context.Response.Headers.Location = $"http://{Host}:{_receiver.Port}/elsewhere";
            return Task.CompletedTask;
        };
        var sender = NewSender();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_redirect", Body, CancellationToken.None);

        Assert.False(delivery.Delivered);
        Assert.Equal(302, delivery.LastStatus);
        Assert.Contains("redirects are not followed", delivery.LastError, StringComparison.Ordinal);
        var request = Assert.Single(_receiver.Requests);
        Assert.Equal("/hook", request.Path);
    }
}
