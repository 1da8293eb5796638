using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Core.Inference;
using CvrlServe.Training.Config;
using CvrlServe.Training.Modules;
using CvrlServe.Training.Trainers;

namespace CvrlServe.Training.Checkpoints;

/// <summary>What a checkpoint folder says about the encoder it holds.</summary>
/// <param name="Architecture">An <see cref="R3dArchitecture"/> name.</param>
/// <param name="Width">Width multiplier.</param>
/// <param name="Kind"><c>random-init</c>, <c>pretrained</c>, <c>supervised</c> or <c>imported</c>.</param>
/// <param name="Step">Training steps taken.</param>
/// <param name="ConfigSha256">SHA-256 of the resolved training config, when trained here.</param>
/// <param name="Data">What it was trained on.</param>
/// <param name="PretrainingClip">
/// The clips it was trained on. <see cref="EncoderCheckpoint.Load"/> completes the short side and frame rate from the
/// resolved config saved beside it (<c>trainer.json</c>) when <c>checkpoint.json</c> lacks them.
/// </param>
public sealed record CheckpointInfo(
    string Architecture,
    double Width,
    string Kind,
    long Step = 0,
    string? ConfigSha256 = null,
    string? Data = null,
    ClipGeometry? PretrainingClip = null);

/// <summary>
/// A checkpoint folder: <c>checkpoint.json</c> (<see cref="CheckpointInfo"/>) and <c>encoder.bin</c>
/// (TorchSharp state dict). Training adds its own files (head, optimizer) beside these.
/// </summary>
public static class EncoderCheckpoint
{
    public const string InfoFile = "checkpoint.json";
    public const string EncoderFile = "encoder.bin";

    public static void Save(string folder, R3dEncoder encoder, CheckpointInfo info)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        Directory.CreateDirectory(folder);
        string weights = Path.Combine(folder, EncoderFile);
        encoder.save(weights + ".tmp");
        File.Move(weights + ".tmp", weights, overwrite: true);
        string json = Path.Combine(folder, InfoFile);
        File.WriteAllText(json + ".tmp", JsonSerializer.Serialize(info, EncoderManifest.Json));
        File.Move(json + ".tmp", json, overwrite: true);
    }

    /// <summary>
    /// A checkpoint folder itself, or a run folder (its newest <c>checkpoints/step-N</c>), so
    /// <c>cvrl export --checkpoint runs/NAME</c> exports the last checkpoint of a run.
    /// </summary>
    public static string Resolve(string path)
    {
        if (File.Exists(Path.Combine(path, InfoFile)))
        {
            return path;
        }

        string checkpoints = Directory.Exists(Path.Combine(path, "checkpoints")) ? Path.Combine(path, "checkpoints") : path;
        var latest = Directory.Exists(checkpoints)
            ? Directory.GetDirectories(checkpoints, "step-*").Where(d => File.Exists(Path.Combine(d, InfoFile))).Order(StringComparer.Ordinal).LastOrDefault()
            : null;
        return latest ?? throw new FileNotFoundException($"'{path}' is not a checkpoint: it needs {InfoFile} and {EncoderFile}, or a checkpoints/step-N folder that has them.");
    }

    public static (R3dEncoder Encoder, CheckpointInfo Info) Load(string path)
    {
        string folder = Resolve(path);
        string json = Path.Combine(folder, InfoFile);
        string weights = Path.Combine(folder, EncoderFile);
        if (!File.Exists(json) || !File.Exists(weights))
        {
            throw new FileNotFoundException($"'{folder}' is not a checkpoint: it needs {InfoFile} and {EncoderFile}.");
        }

        var info = JsonSerializer.Deserialize<CheckpointInfo>(File.ReadAllText(json), EncoderManifest.Json)
            ?? throw new InvalidDataException($"{json} is empty.");
        info = WithTrainingData(folder, info);
        var encoder = new R3dEncoder(R3dArchitecture.Parse(info.Architecture), info.Width);
        try
        {
            encoder.load(weights);
        }
        catch (Exception e) when (e is ArgumentException or InvalidOperationException or IOException)
        {
            encoder.Dispose();
            throw new InvalidDataException($"{weights} does not fit a {info.Architecture} at width {info.Width}: {e.Message}", e);
        }

        return (encoder, info);
    }

    /// <summary>
    /// The checkpoint's clip as its training config had it: frames, stride, crop, short side and target
    /// fps from <c>data</c> of the resolved config in <c>trainer.json</c>, which is what the trainer ran
    /// with. Unchanged when the clip already records a short side, or when no config was saved.
    /// </summary>
    private static CheckpointInfo WithTrainingData(string folder, CheckpointInfo info)
    {
        string trainer = Path.Combine(folder, TrainerState.FileName);
        if (info.PretrainingClip is { ShortSide: not null } || !File.Exists(trainer))
        {
            return info;
        }

        DataSection? data;
        try
        {
            data = JsonNode.Parse(File.ReadAllText(trainer))?["config"]?["data"]?.Deserialize<DataSection>(EncoderManifest.Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{trainer} is not a valid trainer state: {e.Message}", e);
        }

        return data is null ? info : info with { PretrainingClip = new ClipGeometry(data.Frames, data.Stride, data.CropSize, data.ShortSide, data.TargetFps) };
    }
}
