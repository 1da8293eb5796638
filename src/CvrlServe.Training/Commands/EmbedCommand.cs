using System.Text.Json;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl embed --model models/NAME [--per-clip] VIDEO...</c>: one JSON line per video.</summary>
internal static class EmbedCommand
{
    private static readonly JsonSerializerOptions JsonLines = new(EncoderManifest.Json) { WriteIndented = false };

    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--per-clip", "--cpu" };

    public static async Task<int> RunAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string folder = args.Required("--model");
        bool perClip = args.Flag("--per-clip");
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();
        if (args.Positionals.Count == 0)
        {
            throw new UsageException("Name at least one video to embed.");
        }

        var options = new EncoderSessionOptions { Provider = cpu ? ProviderPreference.Cpu : ProviderPreference.Cuda, WarmUp = false, InferenceTimeout = Timeout.InfiniteTimeSpan };
        EncoderModel model;
        try
        {
            model = await EncoderModel.LoadAsync(folder, options);
        }
        catch (ModelLoadException e)
        {
            error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }

        await using var owned = model;
        using var reader = new VideoReader();
        var embedder = new VideoEmbedder(reader);
        int failures = 0;
        foreach (string video in args.Positionals)
        {
            try
            {
                var result = await embedder.EmbedAsync(model, video);
                output.WriteLine(JsonSerializer.Serialize(Line(video, result, model.Session.Provider, perClip), JsonLines));
            }
            catch (CvrlException e)
            {
                failures++;
                error.WriteLine($"cvrl: {video}: {e.Message}");
            }
        }

        return failures == 0 ? 0 : 1;
    }

    private static object Line(string video, VideoEmbedding result, string provider, bool perClip) => new
    {
        video,
        model = result.Model,
        result.ModelId,
        result.Dimension,
        provider,
        result.Embedding,
        clips = perClip
            ? result.Clips.Select(c => new { c.Clip, startSeconds = c.Start.TotalSeconds, endSeconds = c.End.TotalSeconds, c.Embedding })
            : null,
        timingsMs = new
        {
            probe = result.Timings.Probe.TotalMilliseconds,
            decode = result.Timings.Decode.TotalMilliseconds,
            queue = result.Timings.Queue.TotalMilliseconds,
            inference = result.Timings.Inference.TotalMilliseconds,
            total = result.Timings.Total.TotalMilliseconds,
        },
    };
}
