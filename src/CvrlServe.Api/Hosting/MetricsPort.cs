using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// <c>Cvrl:MetricsPort</c>: a second port for the cluster's scraper. A request that arrived on it may read
/// <c>/metrics</c> and <c>/health/*</c> and nothing else; a request on any other port never gets
/// <c>/metrics</c>. Both answer 404 (problem+json) otherwise. The port is the socket's local port, not the
/// Host header a client controls.
/// </summary>
internal static partial class MetricsPort
{
    public static IApplicationBuilder UseMetricsPort(this WebApplication app)
    {
        int port = app.Services.GetRequiredService<IOptions<CvrlServeOptions>>().Value.MetricsPort;
        if (port == 0)
        {
            return app;
        }

        app.Lifetime.ApplicationStarted.Register(() => WarnIfNotListening(app, port));
        return app.Use((context, next) =>
        {
            // By the endpoint routing chose (WebApplication routes before any middleware), not by the path
            // text: /metrics/, /METRICS and any other spelling routing accepts reach the same endpoint.
            var endpoint = context.GetEndpoint()?.Metadata.GetMetadata<ManagementEndpoint>();
            bool allowed = context.Connection.LocalPort == port ? endpoint is not null : endpoint != ManagementEndpoint.Metrics;
            if (allowed)
            {
                return next(context);
            }

            context.Response.StatusCode = StatusCodes.Status404NotFound;
            return Task.CompletedTask;
        });
    }

    private static void WarnIfNotListening(WebApplication app, int port)
    {
        var addresses = app.Services.GetRequiredService<IServer>().Features.Get<IServerAddressesFeature>()?.Addresses ?? [];
        if (addresses.Count == 0 || addresses.Any(a => Uri.TryCreate(a.Replace("//+:", "//localhost:", StringComparison.Ordinal).Replace("//*:", "//localhost:", StringComparison.Ordinal), UriKind.Absolute, out var uri) && uri.Port == port))
        {
            return;
        }

        NotListening(app.Logger, port, string.Join(", ", addresses));
    }

    [LoggerMessage(Level = LogLevel.Warning, Message = "Cvrl:MetricsPort is {Port} but the server listens on {Addresses} only: /metrics is served nowhere. Add the port to ASPNETCORE_HTTP_PORTS (8080;PORT) or --urls.")]
    private static partial void NotListening(ILogger logger, int port, string addresses);
}

/// <summary>Marks the endpoints the metrics port serves: the scrape, and health.</summary>
internal sealed class ManagementEndpoint
{
    public static readonly ManagementEndpoint Metrics = new();
    public static readonly ManagementEndpoint Health = new();

    private ManagementEndpoint()
    {
    }
}
