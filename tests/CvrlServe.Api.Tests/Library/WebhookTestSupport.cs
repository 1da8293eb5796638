using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using CvrlServe.Api.Library;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace CvrlServe.Api.Tests.Library;

/// <summary>One request as the receiver saw it.</summary>
internal sealed record ReceivedWebhook(string Method, string Path, string? ContentType, string? EventId, string? Signature, byte[] Body);

/// <summary>
/// A real HTTP server (Kestrel) on 127.0.0.1 at a free port that records every request and answers as
/// <see cref="Respond"/> says for the n-th request (1-based); 200 by default.
/// </summary>
internal sealed class WebhookReceiver : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly TaskCompletionSource<ReceivedWebhook> _first = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _hits;

    private WebhookReceiver(WebApplication app) => _app = app;

    public ConcurrentQueue<ReceivedWebhook> Requests { get; } = new();

    /// <summary>Completes with the first request, once it is recorded.</summary>
    public Task<ReceivedWebhook> First => _first.Task;

    public Func<int, HttpContext, Task> Respond { get; set; } = (_, context) =>
    {
        context.Response.StatusCode = 200;
        return Task.CompletedTask;
    };

    public int Port { get; private set; }

    public static async Task<WebhookReceiver> StartAsync()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.Listen(IPAddress.Loopback, 0));
        var app = builder.Build();
        var receiver = new WebhookReceiver(app);
        app.Run(receiver.HandleAsync);
        await app.StartAsync();
        string address = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()!.Addresses.Single();
        receiver.Port = new Uri(address).Port;
        return receiver;
    }

    private async Task HandleAsync(HttpContext context)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body, context.RequestAborted);
        var headers = context.Request.Headers;
        var received = new ReceivedWebhook(context.Request.Method, context.Request.Path.Value ?? "", headers.ContentType.ToString(),
            headers["X-Cvrl-Event"].ToString(), headers["X-Cvrl-Signature"].ToString(), body.ToArray());
        Requests.Enqueue(received);
        _first.TrySetResult(received);
        await Respond(Interlocked.Increment(ref _hits), context);
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}

/// <summary>A resolver answering from a fixed table (a function of how many times it was asked), recording each question.</summary>
internal sealed class TableResolver(Func<string, int, IPAddress[]> answer) : IHostResolver
{
    private int _calls;

    public ConcurrentQueue<string> Asked { get; } = new();

    public TableResolver(Dictionary<string, IPAddress[]> table)
        : this((host, _) => table.TryGetValue(host, out var addresses) ? addresses : throw new SocketException((int)SocketError.HostNotFound))
    {
    }

    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken)
    {
        Asked.Enqueue(host);
        return Task.FromResult(answer(host, Interlocked.Increment(ref _calls)));
    }
}

/// <summary>
/// The sender's connect seam in tests: connects real sockets, but only to loopback addresses. Any other
/// address is recorded as a violation (and refused), so a test can fail on it even when the sender swallows
/// the error.
/// </summary>
internal sealed class LoopbackOnlyConnector
{
    public ConcurrentQueue<IPEndPoint> Connects { get; } = new();

    public ConcurrentQueue<IPEndPoint> Violations { get; } = new();

    public async ValueTask<Stream> ConnectAsync(IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        Connects.Enqueue(endpoint);
        if (!IPAddress.IsLoopback(endpoint.Address) || endpoint.Address.IsIPv4MappedToIPv6)
        {
            Violations.Enqueue(endpoint);
            throw new InvalidOperationException($"Test connector: the sender tried to connect to {endpoint}, which is not loopback.");
        }

        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }
}
