using CvrlServe.Training.Commands;
using TorchSharp;

namespace CvrlServe.Training;

/// <summary>The <c>cvrl</c> command line: parses, dispatches, and turns failures into messages and exit codes.</summary>
internal static class Cli
{
    private static readonly string Usage = $"""
        cvrl: CVRL video representation training and tooling.

        Usage:
          cvrl init --arch ARCH [--width W] --out models/NAME [--seed N] [view options]
              a randomly initialized encoder (the random-init baseline; a test fixture)
          cvrl export --checkpoint DIR --out models/NAME [view options]
              export a training checkpoint's encoder to ONNX with its manifest
          cvrl import --arch torchvision-r3d18 --weights FILE.pth --out models/NAME [view options]
              serve a PyTorch-trained torchvision r3d_18 (state dict saved with torch.save)
          cvrl inflate --checkpoint DIR --out DIR --frames N --stride N
              a checkpoint trained on single frames (data.frames=1) as a video encoder: every 3-D kernel
              keeps only its centre temporal tap (the paper's SimCLR- and supervised-inflated baselines)
          cvrl pretrain --data DIR|LIST --config FILE [--out runs/NAME] [--steps N] [--resume]
                        [--set key.path=value]... [--cache DIR] [--stop-at STEP]
              CVRL self-supervised pretraining on a folder of videos, or the videos of a labelled list (labels
              ignored: e.g. a benchmark's train.csv); configs: src/CvrlServe.Training/experiments/
          cvrl train-supervised --data LABELLED --config FILE [--init CHECKPOINT] [--eval LABELLED] [same options as pretrain]
                           --eval: held-out top-1 of the trained classifier (centre clip) after training
              the supervised baseline (linear head, cross-entropy, crop/flip only); --init fine-tunes a
              pretrained encoder. LABELLED: a folder per class, a CSV of path,label, or a UCF101 split list
          cvrl embed --model models/NAME [--per-clip] [--cpu] VIDEO...|--list FILE|--folder DIR
                     [--shard i/N|auto/N] [--out FILE.jsonl [--retry-failed]] [--allow-refused] [--concurrency N]
          cvrl embed --server URL [--api-key KEY] [--model NAME] [--retries N] [--timeout S] (same options)
          cvrl embed --server URL --library [--tags a,b] (same options but --per-clip)
              stores each video in the service's library (POST /v1/videos; a long video's job is followed);
              the line records the entry (id, sha256, existing) instead of an embedding; resumable the same way
              one JSON line per video: embedding, model id, per-clip embeddings with times, stage timings.
              --folder: its videos, recursively; --list: one path per line. --shard: this worker's share
              (SHA-256 of the path mod N; auto/N reads JOB_COMPLETION_INDEX). --out: resumable (a rerun
              skips what is done in this model's space; a torn last line is dropped; {"{shard}"} in FILE is
              the shard's index). A video refused for good (not a video, undecodable, past a limit,
              unreadable) is reported on stderr and recorded in --out, and a rerun skips it unless
              --retry-failed; any other failure (server unreachable after the retries, a bad answer, an
              unexpected error) is reported and not recorded, so a rerun tries it again.
              exit: 0 when every video is embedded (or refused, with --allow-refused), 1 otherwise,
              130 when stopped (Ctrl-C, SIGTERM). --server: through a CvrlServe service (CVRL_API_KEY),
              retrying refused connections, lost answers, timeouts (--timeout per attempt, the answer
              included), 429/502/503/504 (after Retry-After); a refused key or a model that changes
              during the run stops it
          cvrl probe train --model models/NAME --data LABELLED --name PROBE [--trainer lbfgs|sdca]
                           [--preset small|paper] [--augment protocol|none] [--flip on|off]
                           [--clips-per-video N] [--train-crop N] [--single-frame] [--seed N]
                           [--l2 a,b,c] [--features-cache DIR]
              a linear probe on frozen embeddings (CVRL's linear evaluation), saved in models/NAME/probes/:
              N clips per video (8; 1 with --augment none) at random offsets, random resized crops
              (area 0.3-1, aspect 0.5-2) of --train-crop (the view's crop; the preset's) and flips
              (--flip off where left/right are classes); L2 swept on held-out videos (0,1e-4..1)
          cvrl probe eval --model models/NAME --probe PROBE --data LABELLED [--preset small|paper]
                          [--single-frame] [--json FILE] [--confusion FILE.png]
              top-1/top-5, per-class precision/recall, log-loss over the view's clips x crops (softmax
              averaged); --preset and --single-frame as the probe was trained; --json writes the
              metrics with the settings (model id, preset, view, clips, flip, seed, single-frame)
              presets: small (16x2, short side 128, 4 clips x 3 crops of 112, train crop 112),
                       paper (32x2, short side 256, 10 clips x 3 crops of 256, train crop 224);
              without one, the manifest's view (and its crop for training)
          cvrl classify --model models/NAME --probe PROBE [--top K] VIDEO...
              one JSON line per video with its top classes
          cvrl plot-curves --run RUNDIR [--run RUNDIR2 ...] --out FILE.png [--title T]
              loss and accuracy of runs (their metrics.csv) overlaid: per step faint, trailing mean bold
          cvrl plot-embeddings --model models/NAME --data LABELLED --out FILE.png [--cpu]
                               [--features-cache DIR] [--max-per-class N]
              each video's embedding (mean of the serving views) projected by PCA to 2-D, coloured by class
          cvrl doctor
              check that libtorch loads and run a Conv3d forward/backward

          architectures: r3d18, r3d34, r3d50, r3d101, r3d152, torchvision-r3d18
        {ModelCommands.ViewHelp}
        Exit codes: 0 success, 1 failure, 2 bad command line.
        """;

#if CVRL_WITHOUT_LIBTORCH
    /// <summary>False in the container's cvrl (<c>-p:CvrlWithoutLibTorch=true</c>): no libtorch, so no training.</summary>
    public const bool HasLibTorch = false;
#else
    public const bool HasLibTorch = true;
#endif

    /// <summary>The commands that run TorchSharp; the others need only Core (ONNX Runtime, ML.NET, ffmpeg).</summary>
    public static readonly IReadOnlySet<string> TorchCommands = new HashSet<string>(StringComparer.Ordinal)
    {
        "doctor", "init", "export", "import", "inflate", "pretrain", "train-supervised",
    };

    public static async Task<int> RunAsync(string[] args, TextWriter output, TextWriter error)
    {
        if (!HasLibTorch && args is [var command, ..] && TorchCommands.Contains(command))
        {
            error.WriteLine($"cvrl: '{command}' needs libtorch, and this cvrl was published without it (-p:CvrlWithoutLibTorch=true, as in the container image); use the full build (dotnet run --project src/CvrlServe.Training).");
            return 1;
        }

        try
        {
            return args switch
            {
                [] => Help(error, 2),
                ["--help" or "-h" or "help"] => Help(output, 0),
                ["doctor"] => Doctor(output, error),
                ["init", .. var rest] => ModelCommands.Init(new CommandArgs(rest, Flags.None), output),
                ["export", .. var rest] => ModelCommands.Export(new CommandArgs(rest, Flags.None), output),
                ["import", .. var rest] => ModelCommands.Import(new CommandArgs(rest, Flags.None), output),
                ["inflate", .. var rest] => InflateCommand.Run(new CommandArgs(rest, Flags.None), output),
                ["pretrain", .. var rest] => await TrainCommands.PretrainAsync(new CommandArgs(rest, TrainCommands.Flags), output, error),
                ["embed", .. var rest] => await EmbedCommand.RunAsync(new CommandArgs(rest, EmbedCommand.Flags), output, error),
                ["probe", "train", .. var rest] => await ProbeCommands.TrainAsync(new CommandArgs(rest, ProbeCommands.Flags), output, error),
                ["probe", "eval", .. var rest] => await ProbeCommands.EvalAsync(new CommandArgs(rest, ProbeCommands.Flags), output, error),
                ["classify", .. var rest] => await ProbeCommands.ClassifyAsync(new CommandArgs(rest, ProbeCommands.Flags), output, error),
                ["plot-curves", .. var rest] => PlotCommands.Curves(new CommandArgs(rest, PlotCommands.Flags), output),
                ["plot-embeddings", .. var rest] => await PlotCommands.EmbeddingsAsync(new CommandArgs(rest, PlotCommands.Flags), output, error),
                ["train-supervised", .. var rest] => await TrainCommands.SupervisedAsync(new CommandArgs(rest, TrainCommands.Flags), output, error),
                _ => throw new UsageException($"Unknown command '{args[0]}'. Run 'cvrl --help'."),
            };
        }
        catch (UsageException e)
        {
            error.WriteLine($"cvrl: {e.Message}");
            return 2;
        }
        catch (Exception e) when (e is Config.ConfigException or Core.Datasets.DatasetException or Core.CvrlException)
        {
            error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException or ArgumentException or NotSupportedException)
        {
            error.WriteLine($"cvrl: {e.Message}");
            return 1;
        }
    }

    private static int Help(TextWriter writer, int code)
    {
        writer.WriteLine(Usage);
        return code;
    }

    private static int Doctor(TextWriter output, TextWriter error)
    {
        try
        {
            var device = torch.cuda.is_available() ? torch.CUDA : torch.CPU;
            double gradient = TorchCheck.Conv3dRoundTrip(device);
            output.WriteLine($"libtorch loaded; device {device.type}; Conv3d forward/backward ok (|grad| = {gradient:G4}).");
            return 0;
        }
        catch (Exception e) when (e is TypeInitializationException or NotSupportedException or DllNotFoundException)
        {
            error.WriteLine($"cvrl: libtorch did not load: {e.GetBaseException().Message}");
            return 1;
        }
    }

    private static class Flags
    {
        public static readonly IReadOnlySet<string> None = new HashSet<string>();
    }
}

/// <summary>The smallest proof that libtorch works here: a Conv3d forward and backward.</summary>
internal static class TorchCheck
{
    /// <summary>Runs a 3×3×3 Conv3d on a random clip, back-propagates, and returns the weight-gradient norm.</summary>
    public static double Conv3dRoundTrip(torch.Device device)
    {
        using var scope = torch.NewDisposeScope();
        using var conv = torch.nn.Conv3d(3, 4, kernel_size: 3, padding: 1).to(device);
        var input = torch.rand([2, 3, 4, 8, 8], device: device);
        var output = conv.forward(input);
        output.square().mean().backward();
        return conv.weight!.grad!.norm().item<float>();
    }
}
