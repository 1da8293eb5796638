using CvrlServe.Core.Inference;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// Owns the <see cref="ModelRegistry"/> for the host: starts loading and warming every model in the
/// background as the host starts (so /health/live answers at once and /health/ready turns ready when the
/// models are), and on shutdown retires the models after the requests in flight have finished with them.
/// </summary>
public sealed partial class ModelRegistryService(IOptions<CvrlServeOptions> options, ILogger<ModelRegistryService> logger) : IHostedService, IAsyncDisposable
{
    private readonly TaskCompletionSource _started = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private Task? _loading;

    public ModelRegistry Registry { get; } = new(options.Value.FullModelsFolder, options.Value.SessionOptions(), options.Value.DefaultModel)
    {
        ChangeDetection = options.Value.ChangeDetection,
        PollInterval = TimeSpan.FromSeconds(options.Value.PollIntervalSeconds),
    };

    /// <summary>Completes when the first load of every model has been tried (ready or failed).</summary>
    public Task Started => _started.Task;

    public Task StartAsync(CancellationToken cancellationToken)
    {
        Registry.Changed += status =>
        {
            if (status.Ready)
            {
                LogLoaded(logger, status.Name, status.ModelId, status.Provider);
            }
            else
            {
                LogNotLoaded(logger, status.Name, status.Error);
            }
        };
        _loading = Task.Run(async () =>
        {
            try
            {
                await Registry.StartAsync(CancellationToken.None);
                _started.TrySetResult();
            }
            catch (Exception e)
            {
                LogStartFailed(logger, e, options.Value.FullModelsFolder);
                _started.TrySetException(e);
            }
        }, CancellationToken.None);
        return Task.CompletedTask;
    }

    public async Task StopAsync(CancellationToken cancellationToken)
    {
        // The server has stopped taking requests and drained those in flight before hosted services stop.
        if (_loading is not null)
        {
            await _loading.WaitAsync(cancellationToken);
        }

        await Registry.DisposeAsync();
    }

    public ValueTask DisposeAsync() => Registry.DisposeAsync();

    [LoggerMessage(Level = LogLevel.Information, Message = "Model {Model} ready: model id {ModelId}, provider {Provider}")]
    private static partial void LogLoaded(ILogger logger, string model, string? modelId, string? provider);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Model {Model} not loaded: {Error}")]
    private static partial void LogNotLoaded(ILogger logger, string model, string? error);

    [LoggerMessage(Level = LogLevel.Error, Message = "The models folder {Folder} could not be read")]
    private static partial void LogStartFailed(ILogger logger, Exception exception, string folder);
}
