using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Probes;

/// <summary>How the probe's training clips are augmented.</summary>
public enum ProbeAugment
{
    /// <summary>CVRL's linear-evaluation training input: random resized crop (area 0.3–1, aspect 0.5–2) and horizontal flip.</summary>
    Protocol,

    /// <summary>A centre crop of the training crop size, no flip.</summary>
    None,
}

/// <summary>
/// What probe features are taken with, beyond the model. <see cref="View"/> replaces the manifest's view
/// (an evaluation preset): the features then live in the space of <see cref="ProbeFeatures.SpaceOf"/>,
/// not of the manifest. The remaining settings shape training features only, except
/// <see cref="SingleFrame"/>, which applies to both.
/// </summary>
public sealed record ProbeFeatureOptions
{
    /// <summary>The view (test clips, crops, short side) in place of the manifest's; null keeps the manifest's.</summary>
    public ViewSpec? View { get; init; }

    /// <summary>Training clips per video, each at a uniform random offset.</summary>
    public int ClipsPerVideo { get; init; } = 8;

    public int Seed { get; init; }

    public ProbeAugment Augment { get; init; } = ProbeAugment.Protocol;

    /// <summary>Mirror half the training clips (the protocol's). Off where left and right are the classes.</summary>
    public bool Flip { get; init; } = true;

    /// <summary>The training crop's side; null: the view's crop size (the test crop).</summary>
    public int? TrainCrop { get; init; }

    public RandomResizedCrop Crop { get; init; } = RandomResizedCrop.Protocol;

    /// <summary>Every clip is its centre frame repeated: what appearance alone gives through the same encoder.</summary>
    public bool SingleFrame { get; init; }
}

/// <summary>
/// Features for probes, by CVRL's linear-evaluation protocol (cvrl-method.md §7). Training features: clips
/// at uniform random offsets, decoded at the view's short side without a crop, then (with
/// <see cref="ProbeAugment.Protocol"/>) a random resized crop to the training crop size and a horizontal
/// flip, each clip's draws from a <see cref="Random"/> seeded by (seed, video path, clip index), so clip k
/// is the same whatever the clip count. Test features: the view's clips × crops, for the probe to score and
/// average. All decoding goes through Core.Video and all inference through the model's micro-batcher, as
/// in serving. Features are cached on disk by embedding space (<see cref="SpaceOf"/>), video identity
/// (path, length, modification time) and everything that changes them (clip, frame rate, geometry,
/// normalization; for training the clip count, seed and augmentation; single-frame), so retraining a probe
/// does not decode again and a re-exported model never reads another view's features.
/// </summary>
public sealed class ProbeFeatures(VideoEmbedder embedder, string? cacheFolder)
{
    /// <summary>
    /// The manifest whose <see cref="EncoderManifest.ModelId"/> names the space of features taken with
    /// <paramref name="view"/>: the model exported with that view. Throws <see cref="InvalidRequestException"/>
    /// for a view the encoder cannot be fed with.
    /// </summary>
    public static EncoderManifest SpaceOf(EncoderManifest manifest, ViewSpec? view)
    {
        ArgumentNullException.ThrowIfNull(manifest);
        if (view is null || view == manifest.View)
        {
            return manifest;
        }

        var space = manifest with { View = view };
        var problems = space.Problems();
        return problems.Count == 0 ? space : throw new InvalidRequestException($"The view cannot feed this encoder: {string.Join("; ", problems)}.");
    }

    /// <summary>L2-normalized embeddings of <see cref="ProbeFeatureOptions.ClipsPerVideo"/> training clips of one video.</summary>
    public Task<float[][]> TrainingAsync(EncoderModel model, string video, ProbeFeatureOptions options, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.ClipsPerVideo, 1);
        var manifest = SpaceOf(model.Manifest, options.View);
        var spec = manifest.View;
        var clip = manifest.Clip();
        int crop = options.TrainCrop ?? spec.CropSize;
        if (crop < 1 || crop > EncoderManifest.MaxShortSide || (options.Augment == ProbeAugment.None && crop > spec.ShortSide))
        {
            throw new InvalidRequestException($"A training crop of {crop} does not fit (short side {spec.ShortSide}).");
        }

        bool augment = options.Augment == ProbeAugment.Protocol;
        var geometry = augment
            ? new FrameGeometry(spec.ShortSide, CropMode.None, 0, spec.Interpolation)
            : new FrameGeometry(spec.ShortSide, CropMode.Center, crop, spec.Interpolation);
        var r = options.Crop;
        string augmentation = augment
            ? string.Create(CultureInfo.InvariantCulture, $"augment=protocol:{crop}:area={r.MinArea:R},{r.MaxArea:R}:aspect={r.MinAspect:R},{r.MaxAspect:R}:flip={options.Flip}")
            : "augment=none";
        string view = string.Create(CultureInfo.InvariantCulture,
            $"train|clips={options.ClipsPerVideo}|seed={options.Seed}|{augmentation}|singleFrame={options.SingleFrame}|{Describe(clip, spec.TargetFps, geometry, manifest.Normalization())}");
        return CachedAsync(manifest, video, view, async () =>
        {
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var grid = media.Grid(spec.TargetFps);
            string path = Path.GetFullPath(video);
            var randoms = Enumerable.Range(0, options.ClipsPerVideo).Select(k => ClipRandom(path, k, options.Seed)).ToArray();
            var plan = new SamplingPlan(grid, randoms.Select(random => PlanClip(ClipSampler.TrainingOffset(grid.Count, clip, random), clip, grid.Count, options.SingleFrame)).ToArray());
            if (!augment)
            {
                return (await embedder.EmbedViewsAsync(model, media, plan, geometry, cancellationToken: cancellationToken)).Embeddings;
            }

            // The full frames, the crops and the crops' float tensors are reserved before anything is decoded.
            long cropped = (long)options.ClipsPerVideo * clip.Frames * crop * crop * 3;
            using var reservation = await embedder.Reader.ReserveAsync(
                embedder.Reader.EstimateBytes(media, plan, geometry, withFloatTensors: false) + cropped * (1 + sizeof(float)), cancellationToken);
            var decoded = await embedder.Reader.DecodeAsync(media, plan, geometry, reservation: reservation, cancellationToken: cancellationToken);
            var clips = decoded.Views.Select((v, k) =>
            {
                var box = options.Crop.Draw(randoms[k], v.Width, v.Height);
                bool mirror = randoms[k].NextDouble() < 0.5; // drawn either way, so --flip off keeps the same crops
                return ClipResize.CropResize(v, box, crop, crop, mirror && options.Flip);
            }).ToArray();
            return (await VideoEmbedder.EmbedClipsAsync(model, clips, cancellationToken)).Embeddings;
        });
    }

    /// <summary>L2-normalized embeddings of every test view of one video (clips × crops, clip-major).</summary>
    public Task<float[][]> TestAsync(EncoderModel model, string video, ProbeFeatureOptions? options = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        options ??= new ProbeFeatureOptions();
        var manifest = SpaceOf(model.Manifest, options.View);
        var spec = manifest.View;
        string view = string.Create(CultureInfo.InvariantCulture,
            $"test|clips={spec.Clips}|singleFrame={options.SingleFrame}|{Describe(manifest.Clip(), spec.TargetFps, manifest.Geometry(), manifest.Normalization())}");
        return CachedAsync(manifest, video, view, async () =>
        {
            var media = await embedder.Reader.GetMediaInfoAsync(video, cancellationToken: cancellationToken);
            var grid = media.Grid(spec.TargetFps);
            var clip = manifest.Clip();
            var plan = new SamplingPlan(grid, ClipSampler.EvaluationOffsets(grid.Count, clip, spec.Clips)
                .Select(offset => PlanClip(offset, clip, grid.Count, options.SingleFrame)).ToArray());
            return (await embedder.EmbedViewsAsync(model, media, plan, manifest.Geometry(), cancellationToken: cancellationToken)).Embeddings;
        });
    }

    /// <summary>The source of training clip <paramref name="clip"/>'s draws (offset, crop box, flip, in that order).</summary>
    internal static Random ClipRandom(string fullPath, int clip, int seed) => new(StableHash($"{fullPath}|{clip}", seed));

    /// <summary>
    /// The clip starting at <paramref name="offset"/>, or with <paramref name="singleFrame"/> the grid frame
    /// at its temporal centre (offset + ((T−1)·s)/2, looping as the clip does) repeated T times.
    /// </summary>
    internal static ClipPlan PlanClip(int offset, ClipSpec clip, int length, bool singleFrame) => singleFrame
        ? new ClipPlan(Enumerable.Repeat((int)((offset + (long)(clip.Span - 1) / 2) % length), clip.Frames).ToArray())
        : new ClipPlan(ClipSampler.Indices(offset, clip, length));

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
