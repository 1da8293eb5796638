using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Serialization;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Inference;

/// <summary>
/// <c>encoder.json</c>, written beside <c>encoder.onnx</c>: everything a consumer needs to feed the
/// encoder and interpret its output, and nothing it must guess. The contract between training and
/// serving; consumers configure themselves from it, never from constants.
/// </summary>
public sealed record EncoderManifest
{
    public const int CurrentSchemaVersion = 1;
    public const string FileName = "encoder.json";
    public const string ModelFileName = "encoder.onnx";

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>The model's name (its folder under <c>models/</c>).</summary>
    public required string Name { get; init; }

    /// <summary>SHA-256 of <c>encoder.onnx</c>, lower-case hex: the encoder's identity. Embeddings, probes and caches carry it.</summary>
    public required string EncoderSha256 { get; init; }

    public required InputSpec Input { get; init; }

    public required OutputSpec Output { get; init; }

    /// <summary>How a served video becomes model inputs.</summary>
    public required ViewSpec View { get; init; }

    /// <summary>The clips the encoder was pretrained on, for the record.</summary>
    public ClipGeometry? PretrainingClip { get; init; }

    public required ValueSpec Values { get; init; }

    public required ArchitectureSpec Architecture { get; init; }

    public required int Opset { get; init; }

    public required Provenance Provenance { get; init; }

    /// <summary>
    /// The identity of the embedding space, lower-case hex: SHA-256 over the ONNX file's SHA-256 and the
    /// canonical JSON of the preprocessing (<see cref="PreprocessingJson"/>). Two exports of one checkpoint
    /// with other views are different spaces; what a request may choose (clip count, per-clip output) is
    /// not part of it. Embeddings, probes and feature caches carry it and are checked against it.
    /// </summary>
    [JsonIgnore]
    public string ModelId => Convert.ToHexStringLower(SHA256.HashData(System.Text.Encoding.UTF8.GetBytes($"{EncoderSha256.ToLowerInvariant()}\n{PreprocessingJson()}")));

    /// <summary>
    /// Everything that decides what the encoder sees, in a fixed key order with invariant number
    /// formatting: frames, stride or target fps, short side, crop size and mode, interpolation, value
    /// range and normalization.
    /// </summary>
    public string PreprocessingJson()
    {
        static string F(double v) => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture);
        static string List(float[] values) => "[" + string.Join(",", values.Select(v => v.ToString("R", System.Globalization.CultureInfo.InvariantCulture))) + "]";
        return $$"""{"frames":{{View.Frames}},"stride":{{View.Stride}},"targetFps":{{(View.TargetFps is { } fps ? F(fps) : "null")}},"shortSide":{{View.ShortSide}},"cropSize":{{View.CropSize}},"cropMode":"{{View.CropMode}}","interpolation":"{{View.Interpolation}}","valueMin":{{List([Values.Min])}},"valueMax":{{List([Values.Max])}},"mean":{{List(Values.Mean)}},"std":{{List(Values.Std)}}}""";
    }

    /// <summary>Reads and validates <c>encoder.json</c> in <paramref name="folder"/>.</summary>
    public static EncoderManifest Load(string folder)
    {
        string path = Path.Combine(folder, FileName);
        EncoderManifest? manifest;
        try
        {
            manifest = JsonSerializer.Deserialize<EncoderManifest>(File.ReadAllText(path), Json);
        }
        catch (JsonException e)
        {
            throw new InvalidDataException($"{path} is not a valid encoder manifest: {e.Message}", e);
        }

        if (manifest is null)
        {
            throw new InvalidDataException($"{path} is empty.");
        }

        manifest.Validate(path);
        return manifest;
    }

    /// <summary>SHA-256 of a file as lower-case hex.</summary>
    public static string Sha256Of(string path)
    {
        using var stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>The decode geometry of the serving views.</summary>
    public FrameGeometry Geometry() => new(View.ShortSide, View.CropMode, View.CropSize, View.Interpolation);

    /// <summary>The clip of the serving views.</summary>
    public ClipSpec Clip() => new(View.Frames, View.Stride);

    /// <summary>The normalization to apply after scaling pixels to [0, 1].</summary>
    public Normalization Normalization() => new(Values.Mean, Values.Std);

    private void Validate(string path)
    {
        var problems = new List<string>();
        if (SchemaVersion != CurrentSchemaVersion)
        {
            problems.Add($"schemaVersion {SchemaVersion} is not supported (expected {CurrentSchemaVersion})");
        }

        if (Input.Layout != "NCTHW" || Input.Channels != 3)
        {
            problems.Add($"input must be NCTHW with 3 channels (got {Input.Layout}, {Input.Channels})");
        }

        if (Output.Dimension < 1)
        {
            problems.Add("output.dimension must be positive");
        }

        if (View.Frames < 1 || View.Stride < 1 || View.Clips < 1 || View.ShortSide < 1 || (View.CropMode != CropMode.None && View.CropSize < 1))
        {
            problems.Add("view needs positive frames, stride, clips, shortSide and cropSize");
        }

        if (Values.Mean.Length != 3 || Values.Std.Length != 3 || Values.Std.Any(s => !(s > 0)))
        {
            problems.Add("values needs 3 means and 3 positive standard deviations");
        }

        if (EncoderSha256.Length != 64)
        {
            problems.Add("encoderSha256 must be 64 hex digits");
        }

        if (problems.Count > 0)
        {
            throw new InvalidDataException($"{path}: {string.Join("; ", problems)}.");
        }
    }
}

/// <summary>The encoder's input: a float32 tensor [N, C, T, H, W] with dynamic N, T, H, W.</summary>
public sealed record InputSpec(string Name, string Layout = "NCTHW", string ElementType = "float32", int Channels = 3);

/// <summary>The encoder's output: a float32 [N, D] pooled embedding (not L2-normalized by the model).</summary>
public sealed record OutputSpec(string Name, int Dimension);

/// <summary>
/// The serving views: <see cref="Clips"/> clips of <see cref="Frames"/> frames at <see cref="Stride"/>
/// on the video's own frame grid (or resampled to <see cref="TargetFps"/> when set), short side resized
/// to <see cref="ShortSide"/> with <see cref="Interpolation"/>, then cropped per <see cref="CropMode"/>.
/// </summary>
public sealed record ViewSpec(
    int Frames,
    int Stride,
    int ShortSide,
    int CropSize,
    CropMode CropMode,
    int Clips,
    double? TargetFps = null,
    ResizeInterpolation Interpolation = ResizeInterpolation.Bilinear)
{
    /// <summary>Views per clip: 3 for three crops, else 1.</summary>
    [JsonIgnore]
    public int CropsPerClip => CropMode == CropMode.ThreeAlongLongSide ? 3 : 1;
}

/// <summary>A clip's frames, stride and (square) crop size.</summary>
public sealed record ClipGeometry(int Frames, int Stride, int CropSize);

/// <summary>Pixel values: [0, 1] after /255, then (x − mean) / std per channel (RGB order).</summary>
public sealed record ValueSpec(float[] Mean, float[] Std, float Min = 0f, float Max = 1f);

/// <summary>What network this is and what it costs.</summary>
/// <param name="FlopsPerClip">2 × multiply-accumulates of every conv for one serving view (crop × frames).</param>
public sealed record ArchitectureSpec(string Name, double Width, long Parameters, long FlopsPerClip);

/// <summary>Where the weights came from.</summary>
/// <param name="Kind"><c>random-init</c>, <c>pretrained</c> (CVRL), <c>supervised</c> or <c>imported</c>.</param>
/// <param name="Checkpoint">The checkpoint or weights file exported.</param>
/// <param name="ConfigSha256">SHA-256 of the resolved training config, when trained here.</param>
/// <param name="Steps">Training steps taken.</param>
/// <param name="Data">What it was trained on.</param>
public sealed record Provenance(string Kind, string? Checkpoint = null, string? ConfigSha256 = null, long? Steps = null, string? Data = null, DateTimeOffset? CreatedUtc = null);
