using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Probes;

/// <summary>
/// Features for probes, by CVRL's linear-evaluation protocol (cvrl-method.md §7): training features from
/// clips at random offsets drawn from a seed (centre crop), test features from the manifest's view spec
/// (every clip × crop, for the probe to score and average). All decoding goes through Core.Video and all
/// inference through the model's micro-batcher, as in serving. Features are cached on disk by model id
/// (<see cref="EncoderManifest.ModelId"/>), video identity (path, length, modification time) and the view
/// actually decoded (clip, frame rate, geometry, normalization; clip count and seed for training), so
/// retraining a probe does not decode again and a re-exported model never reads another view's features.
/// </summary>
public sealed class ProbeFeatures(VideoEmbedder embedder, string? cacheFolder)
{
    /// <summary>L2-normalized embeddings of <paramref name="clips"/> random centre-cropped clips of one video.</summary>
    public Task<float[][]> TrainingAsync(EncoderModel model, string video, int clips, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var manifest = model.Manifest;
        var clip = manifest.Clip();
        var geometry = manifest.Geometry() with { Crop = CropMode.Center };
        string view = string.Create(CultureInfo.InvariantCulture, $"train|clips={clips}|seed={seed}|{Describe(clip, manifest.View.TargetFps, geometry, manifest.Normalization())}");
        return CachedAsync(manifest, video, view, async () =>
        {
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var grid = media.Grid(manifest.View.TargetFps);
            var random = new Random(StableHash(Path.GetFullPath(video), seed));
            var plan = new SamplingPlan(grid, Enumerable.Range(0, clips)
                .Select(_ => new ClipPlan(ClipSampler.Indices(ClipSampler.TrainingOffset(grid.Count, clip, random), clip, grid.Count)))
                .ToArray());
            return (await embedder.EmbedViewsAsync(model, media, plan, geometry, cancellationToken: cancellationToken)).Embeddings;
        });
    }

    /// <summary>L2-normalized embeddings of every serving view of one video (clips × crops, clip-major).</summary>
    public Task<float[][]> TestAsync(EncoderModel model, string video, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        var manifest = model.Manifest;
        string view = string.Create(CultureInfo.InvariantCulture,
            $"test|clips={manifest.View.Clips}|{Describe(manifest.Clip(), manifest.View.TargetFps, manifest.Geometry(), manifest.Normalization())}");
        return CachedAsync(manifest, video, view, async () =>
        {
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var plan = SamplingPlan.Evaluation(media.Grid(manifest.View.TargetFps), manifest.Clip(), manifest.View.Clips);
            return (await embedder.EmbedViewsAsync(model, media, plan, manifest.Geometry(), cancellationToken: cancellationToken)).Embeddings;
        });
    }

    /// <summary>
    /// Everything about a view that changes its features, spelled out although the model id covers the
    /// serving view: training views differ from it (centre crop, random offsets), and a key that names
    /// what was decoded cannot go stale when either changes.
    /// </summary>
    private static string Describe(ClipSpec clip, double? targetFps, FrameGeometry geometry, Normalization normalization) => string.Create(CultureInfo.InvariantCulture,
        $"frames={clip.Frames}|stride={clip.Stride}|fps={(targetFps is { } fps ? fps.ToString("R", CultureInfo.InvariantCulture) : "own")}|shortSide={geometry.ShortSide}|crop={geometry.Crop}:{geometry.CropSize}|interpolation={geometry.Interpolation}|mean={string.Join(",", normalization.Mean.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}|std={string.Join(",", normalization.Std.Select(v => v.ToString("R", CultureInfo.InvariantCulture)))}");

    private async Task<float[][]> CachedAsync(EncoderManifest manifest, string video, string view, Func<Task<float[][]>> compute)
    {
        if (cacheFolder is null)
        {
            return await compute();
        }

        var file = new FileInfo(video);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"{manifest.ModelId}|{file.FullName}|{file.Length}|{file.LastWriteTimeUtc.Ticks}|{view}"))))[..32];
        string path = Path.Combine(cacheFolder, key + ".features");
        if (File.Exists(path))
        {
            try
            {
                return Read(path);
            }
            catch (Exception e) when (e is EndOfStreamException or InvalidDataException)
            {
                File.Delete(path);
            }
        }

        var features = await compute();
        Directory.CreateDirectory(cacheFolder);
        string temporary = $"{path}.{Guid.NewGuid():N}.tmp";
        using (var writer = new BinaryWriter(File.Create(temporary)))
        {
            writer.Write(features.Length);
            writer.Write(features[0].Length);
            foreach (var f in features)
            {
                foreach (float v in f)
                {
                    writer.Write(v);
                }
            }
        }

        File.Move(temporary, path, overwrite: true);
        return features;
    }

    private static float[][] Read(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        int count = reader.ReadInt32();
        int dimension = reader.ReadInt32();
        if (count < 1 || dimension < 1 || reader.BaseStream.Length != 8 + 4L * count * dimension)
        {
            throw new InvalidDataException($"'{path}' is not a complete feature file.");
        }

        var features = new float[count][];
        for (int i = 0; i < count; i++)
        {
            features[i] = new float[dimension];
            for (int d = 0; d < dimension; d++)
            {
                features[i][d] = reader.ReadSingle();
            }
        }

        return features;
    }

    private static int StableHash(string text, int seed)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes($"{seed}|{text}"));
        return BitConverter.ToInt32(hash, 0) & 0x7FFFFFFF;
    }
}
