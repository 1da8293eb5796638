using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Export;
using CvrlServe.Training.Modules;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl init</c>, <c>cvrl export</c> and <c>cvrl import</c>: commands that write a model folder.</summary>
internal static class ModelCommands
{
    public const string ViewHelp = """
          view options (how the service samples a video; export defaults to what the checkpoint was
          trained on, init and import to these, sized for CPU serving):
            --frames N       frames per clip (16)        --stride N     frame stride (2; 1 for imports)
            --fps R|none     resample to R fps first (none: the video's own frames)
            --short-side N   resize the short side (128) --crop N       square crop (112)
            --crops 1|3      centre crop, or 3 along the long side (1)
            --clips K        clips per video (4)
        """;

    /// <summary><c>cvrl init --arch A --width W --out DIR [--seed N]</c>: a randomly initialized encoder.</summary>
    public static int Init(CommandArgs args, TextWriter output)
    {
        string arch = args.Required("--arch");
        var architecture = R3dArchitecture.Find(arch) ?? throw new UsageException(R3dArchitecture.UnknownMessage(arch));
        double width = args.Double("--width", 1.0, 0.0625, 8);
        string outFolder = args.Required("--out");
        int seed = args.Int("--seed", 0, min: 0);
        var view = View(args, EncoderExport.DefaultView);
        args.RejectUnknown();

        TorchSharp.torch.random.manual_seed(seed);
        using var encoder = new R3dEncoder(architecture, width);
        var manifest = EncoderExport.Write(outFolder, encoder, view, EncoderExport.CvrlValues,
            new Provenance("random-init", Data: $"none: random initialization, seed {seed}", CreatedUtc: DateTimeOffset.UtcNow), training: null);
        Report(output, outFolder, manifest);
        return 0;
    }

    /// <summary><c>cvrl export --checkpoint DIR --out DIR</c>: an encoder from a training checkpoint.</summary>
    public static int Export(CommandArgs args, TextWriter output)
    {
        string checkpoint = args.Required("--checkpoint");
        string outFolder = args.Required("--out");
        var (encoder, info) = EncoderCheckpoint.Load(checkpoint);
        using (encoder)
        {
            // Serve what the encoder was trained on unless told otherwise: its clip length, stride, crop,
            // short side and frame rate. A view it never saw is a different embedding space, not a default.
            var training = info.PretrainingClip;
            if (training is { ShortSide: null } && args.Optional("--short-side") is null)
            {
                throw new UsageException("The checkpoint does not record the short side it was trained at (no trainer.json beside it): pass --short-side.");
            }

            var trained = training is { } c
                ? EncoderExport.DefaultView with { Frames = c.Frames, Stride = c.Stride, CropSize = c.CropSize, ShortSide = c.ShortSide ?? EncoderExport.DefaultView.ShortSide, TargetFps = c.TargetFps }
                : EncoderExport.DefaultView;
            var view = View(args, trained);
            args.RejectUnknown();
            var manifest = EncoderExport.Write(outFolder, encoder, view, EncoderExport.CvrlValues,
                new Provenance(info.Kind, Path.GetFullPath(EncoderCheckpoint.Resolve(checkpoint)), info.ConfigSha256, info.Step, info.Data, DateTimeOffset.UtcNow),
                info.PretrainingClip);
            Report(output, outFolder, manifest);
        }

        return 0;
    }

    /// <summary><c>cvrl import --arch torchvision-r3d18 --weights FILE.pth --out DIR</c>: a PyTorch-trained encoder.</summary>
    public static int Import(CommandArgs args, TextWriter output)
    {
        string arch = args.Required("--arch");
        if (!string.Equals(arch, R3dArchitecture.TorchvisionR3d18.Name, StringComparison.OrdinalIgnoreCase))
        {
            throw new UsageException($"Only --arch {R3dArchitecture.TorchvisionR3d18.Name} can be imported.");
        }

        string weights = args.Required("--weights");
        string outFolder = args.Required("--out");
        // torchvision's r3d_18 Kinetics recipe: 16 consecutive frames, resize to 128 × 171, centre crop 112.
        var view = View(args, EncoderExport.DefaultView with { Stride = 1 });
        args.RejectUnknown();
        if (!File.Exists(weights))
        {
            throw new UsageException($"No weights file at '{weights}'.");
        }

        using var encoder = TorchvisionImport.Load(weights);
        var manifest = EncoderExport.Write(outFolder, encoder, view, new ValueSpec(TorchvisionImport.Mean, TorchvisionImport.Std),
            new Provenance("imported", Path.GetFullPath(weights), Data: "torchvision r3d_18 state dict", CreatedUtc: DateTimeOffset.UtcNow),
            training: new ClipGeometry(16, 1, 112, ShortSide: 128));
        Report(output, outFolder, manifest);
        return 0;
    }

    private static ViewSpec View(CommandArgs args, ViewSpec defaults)
    {
        int crops = args.Int("--crops", defaults.CropsPerClip, 1, 3);
        if (crops == 2)
        {
            throw new UsageException("--crops must be 1 or 3.");
        }

        var view = new ViewSpec(
            Frames: args.Int("--frames", defaults.Frames, 1, 512),
            Stride: args.Int("--stride", defaults.Stride, 1, 64),
            ShortSide: args.Int("--short-side", defaults.ShortSide, 8, 2048),
            CropSize: args.Int("--crop", defaults.CropSize, 8, 2048),
            CropMode: crops == 3 ? CropMode.ThreeAlongLongSide : CropMode.Center,
            Clips: args.Int("--clips", defaults.Clips, 1, 64),
            TargetFps: args.Optional("--fps") switch
            {
                null => defaults.TargetFps,
                "none" => null,
                _ => args.Double("--fps", 0, 0.1, EncoderManifest.MaxTargetFps),
            });
        if (view.CropSize > view.ShortSide)
        {
            throw new UsageException($"--crop {view.CropSize} does not fit --short-side {view.ShortSide}.");
        }

        return view;
    }

    private static void Report(TextWriter output, string folder, EncoderManifest manifest)
    {
        var view = manifest.View;
        output.WriteLine($"Wrote {Path.Combine(folder, EncoderManifest.ModelFileName)} and {EncoderManifest.FileName}");
        output.WriteLine($"  {manifest.Architecture.Name} x{manifest.Architecture.Width:G4}: {manifest.Architecture.Parameters / 1e6:F2} M parameters, " +
            $"{manifest.Output.Dimension}-d embedding, {manifest.Architecture.FlopsPerClip / 1e9:F2} GFLOPs per {view.Frames}x{view.CropSize}x{view.CropSize} view");
        output.WriteLine($"  view {view.Clips} clips x {view.CropsPerClip} crops of {view.Frames} frames at stride {view.Stride}" +
            $"{(view.TargetFps is { } fps ? $" on a {fps:G4} fps grid" : "")}, short side {view.ShortSide}, crop {view.CropSize}");
        output.WriteLine($"  model id {manifest.ModelId} (onnx sha256 {manifest.EncoderSha256})");
    }
}
