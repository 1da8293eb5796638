using System.Text.Json;
using CvrlServe.Core;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Training.Checkpoints;
using CvrlServe.Training.Config;
using CvrlServe.Training.Data;
using CvrlServe.Training.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Trainers;

/// <summary>What pretraining and supervised training share: the run folder, its checkpoints, the frame cache.</summary>
internal static class RunFolder
{
    /// <summary>
    /// Where to start: step 0 in a fresh folder, or on --resume the newest checkpoint's step, folder and saved
    /// (resolved) config, to be compared with this run's by <see cref="CheckSameRecipe"/> once it is resolved.
    /// </summary>
    public static (long Start, string? ResumeFrom, ExperimentConfig? Saved) Prepare(string output, bool resume)
    {
        Directory.CreateDirectory(output);
        string checkpoints = Path.Combine(output, "checkpoints");
        if (!resume)
        {
            if (Directory.Exists(checkpoints) && Directory.EnumerateDirectories(checkpoints).Any())
            {
                throw new ConfigException([$"'{output}' already holds checkpoints: pass --resume to continue it, or choose another --out"]);
            }

            return (0, null, null);
        }

        string from = EncoderCheckpoint.Resolve(output);
        var saved = TrainerState.Read(from);
        return (saved.Step, from, saved.Config);
    }

    /// <summary>Refuses to resume <paramref name="from"/> with a resolved config that differs in anything but steps.</summary>
    public static void CheckSameRecipe(ExperimentConfig resolved, ExperimentConfig saved, string from)
    {
        if ((resolved with { Steps = saved.Steps }).ToJson() != saved.ToJson())
        {
            throw new ConfigException([$"the config differs from the one {from} was trained with (only steps may change on --resume)"]);
        }
    }

    /// <summary>
    /// Decodes every video into the frame cache (or opens its cache), one video per core at a time (each
    /// decode is one ffmpeg process, mostly start-up cost on small videos); unreadable videos are reported
    /// and left out. The result keeps the order of <paramref name="files"/>.
    /// </summary>
    public static async Task<IReadOnlyList<CachedVideo>> CacheAsync(IReadOnlyList<string> files, string cacheFolder, DataSection data, TextWriter log, CancellationToken cancellationToken)
    {
        var options = new CacheOptions(data.ShortSide, data.TargetFps, data.MaxCachedFrames);
        using var reader = new VideoReader();
        var videos = new CachedVideo?[files.Count];
        int done = 0;
        await Parallel.ForAsync(0, files.Count, new ParallelOptions { MaxDegreeOfParallelism = Environment.ProcessorCount, CancellationToken = cancellationToken }, async (i, ct) =>
        {
            try
            {
                videos[i] = await CachedVideo.OpenOrBuildAsync(reader, files[i], cacheFolder, options, ct);
            }
            catch (CvrlException e) when (e.Kind is not ErrorKind.Overloaded)
            {
                lock (log)
                {
                    log.WriteLine($"Skipping {files[i]}: {e.Message}");
                }
            }

            int n = Interlocked.Increment(ref done);
            if (files.Count >= 1000 && n % 1000 == 0)
            {
                lock (log)
                {
                    log.WriteLine($"Cache: {n}/{files.Count} videos");
                }
            }
        });
        var cached = videos.OfType<CachedVideo>().ToArray();
        log.WriteLine($"{cached.Length} of {files.Count} videos cached at short side {options.ShortSide} in {cacheFolder}.");
        return cached;
    }

    /// <summary>Writes checkpoints/step-N (encoder, head, optimizer, trainer state) via a staging folder.</summary>
    public static string SaveCheckpoint(string checkpoints, long step, R3dEncoder encoder, nn.Module head, ParameterUpdater updater, ExperimentConfig config, string data, string kind)
    {
        string folder = Path.Combine(checkpoints, $"step-{step:D7}");
        string staging = folder + ".tmp";
        if (Directory.Exists(staging))
        {
            Directory.Delete(staging, recursive: true);
        }

        EncoderCheckpoint.Save(staging, encoder, new CheckpointInfo(config.Model.Architecture, config.Model.Width, kind, step, config.Sha256(),
            Path.GetFullPath(data), new ClipGeometry(config.Data.Frames, config.Data.Stride, config.Data.CropSize)));
        head.save(Path.Combine(staging, TrainerState.HeadFile));
        updater.Save(Path.Combine(staging, TrainerState.OptimizerFile));
        File.WriteAllText(Path.Combine(staging, TrainerState.FileName),
            JsonSerializer.Serialize(new TrainerState(step, config.TotalSteps, config.Sha256(), config), EncoderManifest.Json));
        if (Directory.Exists(folder))
        {
            Directory.Delete(folder, recursive: true);
        }

        Directory.Move(staging, folder);
        return folder;
    }
}
