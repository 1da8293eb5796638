using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// Ready when the first load of every model is done and the default model serves (warmed: sessions warm up as
/// they load), on CUDA when <see cref="CvrlServeOptions.RequireGpu"/> is set.
/// </summary>
public sealed class ModelsReadyCheck(ModelRegistryService models, Microsoft.Extensions.Options.IOptions<CvrlServeOptions> options) : IHealthCheck
{
    public const string CudaProvider = "CUDAExecutionProvider";

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default)
    {
        if (!models.Started.IsCompletedSuccessfully)
        {
            return Task.FromResult(HealthCheckResult.Unhealthy(models.Started.IsFaulted ? "the models folder could not be read" : "models are loading"));
        }

        return Task.FromResult(Evaluate(models.Registry.List(), models.Registry.DefaultName, options.Value.RequireGpu));
    }

    /// <summary>The readiness of a registry whose models are <paramref name="statuses"/>.</summary>
    public static HealthCheckResult Evaluate(IReadOnlyList<ModelStatus> statuses, string? defaultName, bool requireGpu)
    {
        ArgumentNullException.ThrowIfNull(statuses);
        var data = statuses.ToDictionary(s => s.Name, s => (object)(s.Ready ? "ready" : s.Error ?? "loading"));
        var serving = statuses.FirstOrDefault(s => s.Name == defaultName && s.Ready);
        if (serving is null)
        {
            return HealthCheckResult.Unhealthy(statuses.Count == 0 ? "no model in the models folder" : "the default model is not ready", data: data);
        }

        // GET /v1/models says why CUDA did not load (providerReason).
        return requireGpu && serving.Provider != CudaProvider
            ? HealthCheckResult.Unhealthy($"default model '{defaultName}' runs on {serving.Provider}, and Cvrl:RequireGpu is set", data: data)
            : HealthCheckResult.Healthy($"default model '{defaultName}' ready on {serving.Provider}", data);
    }
}

/// <summary>Ready when ffmpeg and ffprobe can be found (checked once; they do not come and go).</summary>
public sealed class FfmpegCheck(VideoReader reader) : IHealthCheck
{
    private readonly Lazy<string?> _missing = new(() => Missing(reader.Options.BinaryFolder));

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_missing.Value is { } missing ? HealthCheckResult.Unhealthy($"{missing} not found") : HealthCheckResult.Healthy("ffmpeg and ffprobe found"));

    private static string? Missing(string? folder)
    {
        string[] paths = folder is not null ? [folder] : (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator, StringSplitOptions.RemoveEmptyEntries);
        foreach (string tool in new[] { "ffmpeg", "ffprobe" })
        {
            if (!paths.Any(p => File.Exists(Path.Combine(p, tool))))
            {
                return tool;
            }
        }

        return null;
    }
}
