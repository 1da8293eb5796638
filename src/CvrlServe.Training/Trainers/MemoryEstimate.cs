using CvrlServe.Training.Config;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;

namespace CvrlServe.Training.Trainers;

/// <summary>
/// What one training step needs in memory, estimated before training so a config this machine cannot
/// hold is refused with a message rather than an out-of-memory kill hours in.
/// </summary>
public static class MemoryEstimate
{
    /// <summary>Share of available memory a step may plan to use.</summary>
    public const double Headroom = 0.8;

    /// <summary>
    /// Activations kept for backward (every op output of the exported graph, plus each conv's output once
    /// more for its batch norm) × 4 bytes × <paramref name="clips"/> per step, plus weights, gradients and
    /// two optimizer buffers.
    /// Activations are counted on a 1/8-width copy and scaled by width (channels are linear in width).
    /// </summary>
    public static long StepBytes(ExperimentConfig config, int clips, out long parameters)
    {
        ArgumentNullException.ThrowIfNull(config);
        var architecture = R3dArchitecture.Parse(config.Model.Architecture);
        double probeWidth = Math.Min(config.Model.Width, 0.125);
        long activations;
        using (var probe = new R3dEncoder(architecture, probeWidth))
        {
            activations = OnnxGraphStats.ActivationElementsForTraining(OnnxExporter.Export(probe), config.Data.Frames, config.Data.CropSize, config.Data.CropSize);
        }

        using (var full = new R3dEncoder(architecture, config.Model.Width))
        {
            parameters = full.parameters().Sum(p => p.numel());
        }

        int embedding = architecture.EmbeddingSize(config.Model.Width);
        long hidden = config.Model.HeadHiddenSize;
        parameters += config.Model.HeadLayers == 0
            ? embedding * (long)config.Model.ProjectionSize
            : embedding * hidden + (config.Model.HeadLayers - 1) * hidden * hidden + 3 * config.Model.HeadLayers * hidden + hidden * config.Model.ProjectionSize;
        double perClip = activations * (config.Model.Width / probeWidth) * sizeof(float);
        return (long)(perClip * clips) + parameters * sizeof(float) * 4;
    }

    /// <summary>
    /// Throws <see cref="ConfigException"/> when a step of <paramref name="clips"/> clips (2 × batch in
    /// pretraining, the batch in supervised training) would not fit in <paramref name="availableBytes"/>.
    /// </summary>
    public static long Check(ExperimentConfig config, int clips, long availableBytes)
    {
        ArgumentNullException.ThrowIfNull(config);
        long bytes = StepBytes(config, clips, out long parameters);
        if (bytes > Headroom * availableBytes)
        {
            throw new ConfigException(
            [
                $"one step of '{config.Name}' needs about {bytes / 1e9:F1} GB ({config.Model.Architecture} x{config.Model.Width}, " +
                $"{parameters / 1e6:F1} M parameters, {clips} clips of {config.Data.Frames}x{config.Data.CropSize}x{config.Data.CropSize}), " +
                $"but this machine has {availableBytes / 1e9:F1} GB available: lower batchSize, data.frames, data.cropSize or model.width",
            ]);
        }

        return bytes;
    }
}
