using System.Net;
using System.Reflection;
using System.Threading.RateLimiting;
using CvrlServe.Api.Library;
using CvrlServe.Api.Resources;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using Microsoft.AspNetCore.Authentication;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.AspNetCore.RateLimiting;
using Microsoft.Extensions.Options;
using Microsoft.OpenApi;
using Prometheus;

namespace CvrlServe.Api.Hosting;

/// <summary>The service's composition: <see cref="AddCvrlServe"/> registers, <see cref="UseCvrlServe"/> builds the pipeline and maps the API.</summary>
public static class CvrlServeRegistration
{
    public const string RateLimitPolicy = "per-client";

    public static WebApplicationBuilder AddCvrlServe(this WebApplicationBuilder builder)
    {
        ArgumentNullException.ThrowIfNull(builder);
        var services = builder.Services;
        services.AddOptions<CvrlServeOptions>().BindConfiguration(CvrlServeOptions.Section)
            .ValidateDataAnnotations()
            .Validate(o => Directory.Exists(o.FullModelsFolder), "Cvrl:ModelsFolder does not exist.")
            .Validate(o => IsWritable(o.FullDataFolder), "Cvrl:DataFolder cannot be created or written.")
            .ValidateOnStart();

        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<CvrlServeOptions>>().Value;
            return new VideoReader(new VideoReaderOptions
            {
                MaxConcurrentProcesses = o.MaxConcurrentProcesses,
                DecodedMemoryBudgetBytes = o.DecodedMemoryBudgetBytes,
                MaxWaitingDecodes = o.MaxWaitingDecodes,
                DecodePath = o.DecodePath,
                DecodeWorkerPath = o.DecodeWorkerPath,
                DecodeWorkerLimits = new DecodeWorkerLimits { Nvdec = o.Nvdec },
                Limits = new VideoLimits
                {
                    MaxFileBytes = o.MaxUploadBytes,
                    MaxDuration = TimeSpan.FromSeconds(o.MaxDurationSeconds),
                    MaxPixelsPerFrame = o.MaxPixelsPerFrame,
                    MaxDecodedBytes = o.DecodedMemoryBudgetBytes,
                    ProcessTimeout = TimeSpan.FromSeconds(o.RequestTimeoutSeconds),
                },
            });
        });
        services.AddHostedService<DecoderCheck>();
        services.AddSingleton<VideoEmbedder>();
        services.AddSingleton<ModelRegistryService>();
        services.AddHostedService(sp => sp.GetRequiredService<ModelRegistryService>());
        services.AddSingleton<ProbeCatalog>();
        services.AddSingleton<UploadReader>();
        services.AddSingleton<CvrlMetrics>();
        services.AddSingleton<RequestLog>();
        // The library's database holds the entries and the jobs; the library's start applies its migrations,
        // so it is registered before every hosted service that reads jobs.
        services.AddSingleton(sp =>
        {
            var o = sp.GetRequiredService<IOptions<CvrlServeOptions>>().Value;
            return o.Library.Postgres is { Length: > 0 } postgres
                ? LibraryDatabase.Postgres(postgres)
                : LibraryDatabase.Sqlite(o.Library.SqliteFile ?? Path.Combine(o.FullDataFolder, "library.db"));
        });
        services.AddSingleton(sp => new VideoStore(sp.GetRequiredService<LibraryDatabase>()));
        services.AddSingleton<VideoLibrary>();
        services.AddHostedService(sp => sp.GetRequiredService<VideoLibrary>());
        services.AddSingleton<LibraryIngest>();
        services.AddSingleton<IHostResolver, DnsHostResolver>();
        services.AddSingleton(sp => new WebhookSender(sp.GetRequiredService<IOptions<CvrlServeOptions>>().Value.Library.Webhooks, sp.GetRequiredService<IHostResolver>(), sp.GetRequiredService<ILogger<WebhookSender>>()));
        services.AddSingleton(sp => new Jobs.JobStore(sp.GetRequiredService<LibraryDatabase>(), sp.GetRequiredService<ILogger<Jobs.JobStore>>()));
        services.AddSingleton<Jobs.ProbeArchiveJobs>();
        services.AddHostedService(sp => sp.GetRequiredService<Jobs.ProbeArchiveJobs>());
        services.AddSingleton<IngestJobs>();
        services.AddHostedService(sp => sp.GetRequiredService<IngestJobs>());
        CvrlMetrics.StartExporter();

        services.AddProblemDetails(o => o.CustomizeProblemDetails = Problems.Stabilize);
        services.AddExceptionHandler<CvrlExceptionHandler>();
        services.AddSingleton<CvrlExceptionHandler>();
        services.AddSingleton<ProblemFilter>();
        services.AddAuthentication(ApiKeyHandler.SchemeName).AddScheme<AuthenticationSchemeOptions, ApiKeyHandler>(ApiKeyHandler.SchemeName, null);
        services.AddAuthorizationBuilder()
            .AddPolicy(ApiKeyHandler.AdminPolicy, p => p.RequireRole("admin"))
            .AddPolicy(ApiKeyHandler.ClientPolicy, p => p.RequireAuthenticatedUser());
        services.AddRateLimiter(AddRateLimits);
        services.AddOptions<ForwardedHeadersOptions>().Configure<IOptions<CvrlServeOptions>>((forwarded, o) =>
        {
            // Only the configured proxies are believed, not even loopback. With no proxy configured the
            // middleware must do nothing: given empty known lists it would believe every client's header.
            forwarded.ForwardedHeaders = o.Value.KnownProxies.Count == 0 ? ForwardedHeaders.None : ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
            forwarded.KnownIPNetworks.Clear();
            forwarded.KnownProxies.Clear();
            foreach (string proxy in o.Value.KnownProxies)
            {
                if (IPAddress.TryParse(proxy, out var address))
                {
                    forwarded.KnownProxies.Add(address);
                }
                else
                {
                    forwarded.KnownIPNetworks.Add(System.Net.IPNetwork.Parse(proxy));
                }
            }
        });
        services.AddHealthChecks()
            .AddCheck<ModelsReadyCheck>("models", tags: ["ready"])
            .AddCheck<FfmpegCheck>("ffmpeg", tags: ["ready"]);
        // Malformed JSON bodies reach the exception handler, which names the field.
        services.Configure<RouteHandlerOptions>(o => o.ThrowOnBadRequest = true);
        services.AddEndpointsApiExplorer();
        services.AddSwaggerGen(AddSwaggerDocument);
        builder.WebHost.ConfigureKestrel(kestrel => kestrel.AddServerHeader = false);
        services.AddOptions<HostOptions>().Configure<IOptions<CvrlServeOptions>>((host, o) => host.ShutdownTimeout = o.Value.ShutdownTimeout);
        return builder;
    }

    public static WebApplication UseCvrlServe(this WebApplication app)
    {
        ArgumentNullException.ThrowIfNull(app);
        app.Services.GetRequiredService<UploadReader>().DeleteLeftovers();
        app.Services.GetRequiredService<CvrlMetrics>();
        app.UseRequestIds();
        app.UseForwardedHeaders();
        // Outside the exception handler, so the status recorded is the one the client got.
        app.UseHttpMetrics();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        app.UseMetricsPort();
        app.UseAuthentication();
        // Before authorization, so refused keys count against the client's (address) limit too.
        app.UseRateLimiter();
        app.UseAuthorization();
        app.UseSwagger();
        app.UseSwaggerUI(ui =>
        {
            ui.SwaggerEndpoint("/swagger/v1/swagger.json", "CvrlServe v1");
            ui.DocumentTitle = "CvrlServe API";
        });

        var v1 = app.MapGroup("/v1").RequireRateLimiting(RateLimitPolicy).AddEndpointFilter<ProblemFilter>();
        if (app.Services.GetRequiredService<IOptions<CvrlServeOptions>>().Value.Keys.RequireKey)
        {
            v1.RequireAuthorization(ApiKeyHandler.ClientPolicy);
        }

        v1.MapModelsApi().MapEmbeddingsApi().MapClassifyApi().MapProbesApi().MapJobsApi().MapVideosApi().MapSearchApi();
        app.MapHealthChecks("/health/live", new HealthCheckOptions { Predicate = _ => false }).WithMetadata(ManagementEndpoint.Health);
        app.MapHealthChecks("/health/ready", new HealthCheckOptions { Predicate = c => c.Tags.Contains("ready") }).WithMetadata(ManagementEndpoint.Health);
        var scrape = app.MapMetrics("/metrics").WithMetadata(ManagementEndpoint.Metrics);
        var settings = app.Services.GetRequiredService<IOptions<CvrlServeOptions>>().Value;
        if (settings.Keys.RequireKey && settings.MetricsPort == 0)
        {
            // Health stays open for probes and gateways; the API description stays open (it holds no data).
            // With a metrics port, /metrics is open there and served nowhere else.
            scrape.RequireAuthorization(ApiKeyHandler.ClientPolicy);
        }
        return app;
    }

    private static void AddRateLimits(RateLimiterOptions limiter)
    {
        limiter.RejectionStatusCode = StatusCodes.Status429TooManyRequests;
        limiter.OnRejected = async (context, _) =>
        {
            TimeSpan? retryAfter = context.Lease.TryGetMetadata(MetadataName.RetryAfter, out var wait) ? wait : TimeSpan.FromSeconds(1);
            await Problems.WriteAsync(context.HttpContext, Problems.Create(StatusCodes.Status429TooManyRequests, "rate-limited", "Too many requests",
                "This client sent more requests than its rate limit allows. Retry after the time in Retry-After."), retryAfter);
        };
        limiter.AddPolicy(RateLimitPolicy, context =>
        {
            var o = context.RequestServices.GetRequiredService<IOptions<CvrlServeOptions>>().Value.RateLimit;
            if (o.PermitsPerWindow == 0)
            {
                return RateLimitPartition.GetNoLimiter("off");
            }

            // The key's identity when the client sent a valid one, else its address (after trusted proxies).
            string client = context.User.Identity?.IsAuthenticated == true ? context.User.Identity.Name! : "ip:" + context.Connection.RemoteIpAddress;
            return RateLimitPartition.GetFixedWindowLimiter(client, _ => new FixedWindowRateLimiterOptions
            {
                PermitLimit = o.PermitsPerWindow,
                Window = TimeSpan.FromSeconds(o.WindowSeconds),
                QueueLimit = o.QueueLimit,
                QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
            });
        });
    }

    private static void AddSwaggerDocument(Swashbuckle.AspNetCore.SwaggerGen.SwaggerGenOptions swagger)
    {
        swagger.SwaggerDoc("v1", new OpenApiInfo
        {
            Title = "CvrlServe",
            Version = "v1",
            Description = "Self-supervised video embeddings (CVRL) and linear-probe classification. Errors are application/problem+json with a stable `type` (urn:cvrlserve:problem:…).",
        });
        string xml = Path.Combine(AppContext.BaseDirectory, $"{Assembly.GetExecutingAssembly().GetName().Name}.xml");
        if (File.Exists(xml))
        {
            swagger.IncludeXmlComments(xml);
        }

        swagger.SchemaFilter<OpenApiExamples>();
        swagger.AddSecurityDefinition(ApiKeyHandler.SchemeName, new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.ApiKey,
            In = ParameterLocation.Header,
            Name = ApiKeyHandler.HeaderName,
            Description = "An API key: needed for admin endpoints, and for every endpoint when the service requires keys.",
        });
    }

    private static bool IsWritable(string folder)
    {
        try
        {
            Directory.CreateDirectory(folder);
            string probe = Path.Combine(folder, $".write-check-{Guid.NewGuid():N}");
            File.WriteAllText(probe, "");
            File.Delete(probe);
            return true;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return false;
        }
    }
}
