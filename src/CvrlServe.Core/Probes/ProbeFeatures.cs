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
/// inference through the model's micro-batcher, as in serving. Features are cached on disk by encoder
/// hash, video identity and view, so retraining a probe does not decode again.
/// </summary>
public sealed class ProbeFeatures(VideoEmbedder embedder, string? cacheFolder)
{
    /// <summary>L2-normalized embeddings of <paramref name="clips"/> random centre-cropped clips of one video.</summary>
    public Task<float[][]> TrainingAsync(EncoderModel model, string video, int clips, int seed, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        return CachedAsync(model, video, $"train|{clips}|{seed}", async () =>
        {
            var manifest = model.Manifest;
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var grid = media.Grid(manifest.View.TargetFps);
            var random = new Random(StableHash(Path.GetFullPath(video), seed));
            var plan = new SamplingPlan(grid, Enumerable.Range(0, clips)
                .Select(_ => new ClipPlan(ClipSampler.Indices(ClipSampler.TrainingOffset(grid.Count, manifest.Clip(), random), manifest.Clip(), grid.Count)))
                .ToArray());
            var geometry = manifest.Geometry() with { Crop = CropMode.Center };
            return (await embedder.EmbedViewsAsync(model, media, plan, geometry, cancellationToken: cancellationToken)).Embeddings;
        });
    }

    /// <summary>L2-normalized embeddings of every serving view of one video (clips × crops, clip-major).</summary>
    public Task<float[][]> TestAsync(EncoderModel model, string video, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        string view = string.Create(CultureInfo.InvariantCulture, $"test|{model.Manifest.View}");
        return CachedAsync(model, video, view, async () =>
        {
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var plan = SamplingPlan.Evaluation(media.Grid(model.Manifest.View.TargetFps), model.Manifest.Clip(), model.Manifest.View.Clips);
            return (await embedder.EmbedViewsAsync(model, media, plan, model.Manifest.Geometry(), cancellationToken: cancellationToken)).Embeddings;
        });
    }

    private async Task<float[][]> CachedAsync(EncoderModel model, string video, string view, Func<Task<float[][]>> compute)
    {
        if (cacheFolder is null)
        {
            return await compute();
        }

        var file = new FileInfo(video);
        string key = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture,
            $"{model.Manifest.EncoderSha256}|{file.FullName}|{file.Length}|{file.LastWriteTimeUtc.Ticks}|{view}"))))[..32];
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
