using CvrlServe.Core.Video;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// Starts a decode worker as the host starts (not at the first upload), so that the way uploads will be
/// decoded is settled, logged and reported by GET /v1/models from the start.
/// </summary>
public sealed partial class DecoderCheck(VideoReader reader, ILogger<DecoderCheck> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        try
        {
            string backend = await reader.CheckDecoderAsync(stoppingToken);
            if (reader.UsesWorker || reader.Options.DecodePath == DecodePath.Cli)
            {
                LogDecoder(logger, backend);
            }
            else
            {
                LogNoWorker(logger, backend);
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
            // The host stopped first.
        }
    }

    [LoggerMessage(Level = LogLevel.Information, Message = "Uploads are decoded by {Backend}")]
    private static partial void LogDecoder(ILogger logger, string backend);

    [LoggerMessage(Level = LogLevel.Warning, Message = "The decode worker is not used; uploads are decoded by {Backend}")]
    private static partial void LogNoWorker(ILogger logger, string backend);
}
