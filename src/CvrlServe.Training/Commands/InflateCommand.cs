using System.Text.Json;
using CvrlServe.Core.Inference;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Modules;
using CvrlServe.Training.Trainers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Commands;

/// <summary>
/// <c>cvrl inflate</c>: the paper's "inflated" baselines (SimCLR or supervised on single frames, then
/// inflated to video). Every 3-D kernel keeps only its centre temporal tap, so each 2-D kernel sits at
/// the centre of time and every other tap is zero.
/// </summary>
internal static class InflateCommand
{
    /// <summary><c>cvrl inflate --checkpoint DIR --out DIR --frames N --stride N</c>.</summary>
    public static int Run(CommandArgs args, TextWriter output)
    {
        string checkpoint = args.Required("--checkpoint");
        string outFolder = args.Required("--out");
        if (args.Optional("--frames") is null || args.Optional("--stride") is null)
        {
            throw new UsageException("--frames and --stride are required: the clip the inflated encoder is served on.");
        }

        int frames = args.Int("--frames", 0, 1, 512);
        int stride = args.Int("--stride", 0, 1, 64);
        args.RejectUnknown();
        if (Directory.Exists(outFolder) && Directory.EnumerateFileSystemEntries(outFolder).Any())
        {
            throw new UsageException($"--out '{outFolder}' is not empty.");
        }

        string from = EncoderCheckpoint.Resolve(checkpoint);
        var (encoder, info) = EncoderCheckpoint.Load(from);
        using (encoder)
        {
            if (info.PretrainingClip is not { Frames: 1 } clip)
            {
                throw new UsageException($"{from} was trained on {(info.PretrainingClip is { } c ? $"{c.Frames}-frame clips" : "clips it does not record")}; inflation is for encoders trained on single frames (data.frames = 1).");
            }

            KeepCentreTemporalTaps(encoder);
            var video = clip with { Frames = frames, Stride = stride };
            string staging = outFolder.TrimEnd(Path.DirectorySeparatorChar) + ".tmp";
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            EncoderCheckpoint.Save(staging, encoder, info with { Kind = $"{info.Kind}-inflated", PretrainingClip = video });
            if (File.Exists(Path.Combine(from, TrainerState.FileName)))
            {
                var state = TrainerState.Read(from);
                var config = state.Config with { Data = state.Config.Data with { Frames = frames, Stride = stride } };
                File.WriteAllText(Path.Combine(staging, TrainerState.FileName), JsonSerializer.Serialize(
                    state with { ConfigSha256 = config.Sha256(), Config = config, InflatedFrom = Path.GetFullPath(from) }, EncoderManifest.Json));
            }

            if (Directory.Exists(outFolder))
            {
                Directory.Delete(outFolder);
            }

            Directory.Move(staging, outFolder);
        }

        output.WriteLine($"Wrote {outFolder}: {info.Architecture} x{info.Width:G4} from {from}, inflated to {frames} frames at stride {stride} (centre temporal taps only).");
        output.WriteLine($"Export it with: cvrl export --checkpoint {outFolder} --out models/NAME");
        return 0;
    }

    /// <summary>
    /// Zeroes every temporal tap of every 3-D kernel but the centre one (t = kernel / 2). With the R3D convs'
    /// temporal padding of kernel / 2, each output frame then depends on its own input frame only, so on a
    /// clip of T copies of one frame the encoder gives what the single-frame encoder gave on that frame.
    /// </summary>
    internal static void KeepCentreTemporalTaps(R3dEncoder encoder)
    {
        using var noGrad = no_grad();
        foreach (var module in encoder.modules())
        {
            if (module is Conv3d { weight: { } weight } && weight.shape[2] > 1)
            {
                long centre = weight.shape[2] / 2;
                using var before = weight[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(0, centre)];
                using var after = weight[TensorIndex.Colon, TensorIndex.Colon, TensorIndex.Slice(centre + 1)];
                before.zero_();
                after.zero_();
            }
        }
    }
}
