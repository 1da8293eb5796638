using System.Globalization;
using System.Security.Cryptography;
using System.Text;
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

    /// <summary>Bounds that catch a typo or a hostile file before it costs memory; generous for real encoders.</summary>
    public const int MaxFrames = 512;
    public const int MaxStride = 64;
    public const int MaxClips = 64;
    public const int MaxShortSide = 4096;
    public const double MaxTargetFps = 240;
    public const int MaxDimension = 65_536;

    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    };

    public int SchemaVersion { get; init; } = CurrentSchemaVersion;

    /// <summary>The model's name (its folder under <c>models/</c>).</summary>
    public required string Name { get; init; }

    /// <summary>
    /// SHA-256 of <c>encoder.onnx</c>, hex (64 digits): which weights and graph. Not the identity of the
    /// embedding space on its own, since the graph's time, height and width are dynamic: see <see cref="ModelId"/>.
    /// </summary>
    public required string EncoderSha256 { get; init; }

    public required InputSpec Input { get; init; }

    public required OutputSpec Output { get; init; }

    /// <summary>How a served video becomes model inputs.</summary>
    public required ViewSpec View { get; init; }

    /// <summary>
    /// What the encoder was trained on (clip, crop, and when the checkpoint recorded them the short side and
    /// frame rate), for the record and as the default serving view of <c>cvrl export</c>; null for random
    /// initialization. Not part of <see cref="ModelId"/>: the serving view is what decides the space.
    /// </summary>
    public ClipGeometry? Training { get; init; }

    public required ValueSpec Values { get; init; }

    public required ArchitectureSpec Architecture { get; init; }

    public required int Opset { get; init; }

    public required Provenance Provenance { get; init; }

    /// <summary>
    /// The identity of the embedding space, 64 lower-case hex digits: SHA-256 of the UTF-8 text
    /// <c>lowercase(encoderSha256) + "\n" + PreprocessingJson()</c>. Two exports of one checkpoint with other
    /// views are different spaces, and two folders with the same file and view are the same space whatever
    /// their names. What a request may choose (how many clips to average, per-clip output) and the
    /// training record are not part of it. Embeddings, probes and feature caches carry it and are checked
    /// against it. Derived, never stored: it cannot disagree with the manifest.
    /// </summary>
    [JsonIgnore]
    public string ModelId => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes($"{EncoderSha256.ToLowerInvariant()}\n{PreprocessingJson()}")));

    /// <summary>
    /// Everything that decides what the encoder sees, as one line of JSON with a fixed key order:
    /// <c>frames</c>, <c>stride</c>, <c>targetFps</c> (null for the video's own frames), <c>shortSide</c>,
    /// <c>cropSize</c>, <c>cropMode</c> and <c>interpolation</c> (spelled as in <c>encoder.json</c>),
    /// <c>valueMin</c>, <c>valueMax</c> (numbers), <c>mean</c>, <c>std</c> (arrays of 3). Numbers use the
    /// shortest round-trip invariant form (<c>0</c>, <c>0.45</c>, <c>29.97</c>), negative zero written as <c>0</c>.
    /// </summary>
    public string PreprocessingJson()
    {
        static string F(float v) => (v == 0 ? 0f : v).ToString("R", CultureInfo.InvariantCulture);
        static string D(double v) => (v == 0 ? 0d : v).ToString("R", CultureInfo.InvariantCulture);
        static string List(float[] values) => "[" + string.Join(",", values.Select(F)) + "]";
        static string Name<T>(T value)
            where T : struct, Enum => JsonNamingPolicy.CamelCase.ConvertName(value.ToString());
        return $$"""{"frames":{{View.Frames}},"stride":{{View.Stride}},"targetFps":{{(View.TargetFps is { } fps ? D(fps) : "null")}},"shortSide":{{View.ShortSide}},"cropSize":{{View.CropSize}},"cropMode":"{{Name(View.CropMode)}}","interpolation":"{{Name(View.Interpolation)}}","valueMin":{{F(Values.Min)}},"valueMax":{{F(Values.Max)}},"mean":{{List(Values.Mean)}},"std":{{List(Values.Std)}}}""";
    }

    /// <summary>
    /// Reads and validates <c>encoder.json</c> in <paramref name="folder"/>. Throws an
    /// <see cref="InvalidDataException"/> whose message lists every problem found (see <see cref="Problems"/>),
    /// so a bad manifest fails here rather than on every request it would serve.
    /// </summary>
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
            throw Invalid(path, [$"not valid manifest JSON: {e.Message}"], e);
        }

        if (manifest is null)
        {
            throw Invalid(path, ["the file holds no manifest"]);
        }

        var problems = manifest.Problems();
        if (problems.Count > 0)
        {
            throw Invalid(path, problems);
        }

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

    /// <summary>Everything wrong with this manifest (empty when it can serve). JSON may leave required members null, so each is checked.</summary>
    public IReadOnlyList<string> Problems()
    {
        var problems = new List<string>();
        void Check(bool ok, string problem)
        {
            if (!ok)
            {
                problems.Add(problem);
            }
        }

        Check(SchemaVersion == CurrentSchemaVersion, $"schemaVersion {SchemaVersion} is not supported (expected {CurrentSchemaVersion})");
        Check(!string.IsNullOrWhiteSpace(Name), "name is missing");
        Check(EncoderSha256 is { Length: 64 } && EncoderSha256.All(char.IsAsciiHexDigit), "encoderSha256 must be 64 hex digits");
        if (Input is null)
        {
            problems.Add("input is missing");
        }
        else
        {
            Check(!string.IsNullOrWhiteSpace(Input.Name), "input.name is missing");
            Check(Input is { Layout: "NCTHW", ElementType: "float32", Channels: 3 }, $"input must be float32 NCTHW with 3 channels (got {Input.ElementType} {Input.Layout} with {Input.Channels})");
        }

        if (Output is null)
        {
            problems.Add("output is missing");
        }
        else
        {
            Check(!string.IsNullOrWhiteSpace(Output.Name), "output.name is missing");
            Check(Output.Dimension is >= 1 and <= MaxDimension, $"output.dimension must be in [1, {MaxDimension}] (got {Output.Dimension})");
        }

        if (View is null)
        {
            problems.Add("view is missing");
        }
        else
        {
            CheckClip("view", View.Frames, View.Stride, View.CropSize, View.ShortSide, View.TargetFps, problems);
            Check(View.Clips is >= 1 and <= MaxClips, $"view.clips must be in [1, {MaxClips}] (got {View.Clips})");
            Check(Enum.IsDefined(View.CropMode), $"view.cropMode {(int)View.CropMode} is not one of {string.Join(", ", Enum.GetNames<CropMode>())}");
            Check(Enum.IsDefined(View.Interpolation), $"view.interpolation {(int)View.Interpolation} is not one of {string.Join(", ", Enum.GetNames<ResizeInterpolation>())}");
        }

        if (Training is not null)
        {
            CheckClip("training", Training.Frames, Training.Stride, Training.CropSize, Training.ShortSide, Training.TargetFps, problems);
        }

        if (Values is null)
        {
            problems.Add("values is missing");
        }
        else
        {
            Check(Values.Mean is { Length: 3 } && Values.Mean.All(float.IsFinite), "values.mean needs 3 finite numbers");
            Check(Values.Std is { Length: 3 } && Values.Std.All(s => float.IsFinite(s) && s > 0), "values.std needs 3 positive finite numbers");
            Check(float.IsFinite(Values.Min) && float.IsFinite(Values.Max) && Values.Min < Values.Max, $"values.min must be below values.max (got {Values.Min}, {Values.Max})");
        }

        Check(Architecture is not null, "architecture is missing");
        Check(Opset is >= 1 and <= 100, $"opset must be in [1, 100] (got {Opset})");
        Check(Provenance is not null, "provenance is missing");
        return problems;
    }

    private static InvalidDataException Invalid(string path, IReadOnlyList<string> problems, Exception? inner = null) =>
        new($"{path} is not a valid encoder manifest:{Environment.NewLine}  - {string.Join(Environment.NewLine + "  - ", problems)}", inner);

    private static void CheckClip(string section, int frames, int stride, int cropSize, int? shortSide, double? targetFps, List<string> problems)
    {
        if (frames is < 1 or > MaxFrames)
        {
            problems.Add($"{section}.frames must be in [1, {MaxFrames}] (got {frames})");
        }

        if (stride is < 1 or > MaxStride)
        {
            problems.Add($"{section}.stride must be in [1, {MaxStride}] (got {stride})");
        }

        if (shortSide is < 1 or > MaxShortSide)
        {
            problems.Add($"{section}.shortSide must be in [1, {MaxShortSide}] (got {shortSide})");
        }

        if (cropSize < 1 || cropSize > (shortSide ?? MaxShortSide))
        {
            problems.Add($"{section}.cropSize must be in [1, shortSide = {shortSide ?? MaxShortSide}] (got {cropSize})");
        }

        if (targetFps is { } fps && !(fps > 0 && fps <= MaxTargetFps))
        {
            problems.Add($"{section}.targetFps must be in (0, {MaxTargetFps}] when set (got {fps})");
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

/// <summary>
/// The clips an encoder was trained on: frames, stride, (square) crop size, and the short side the crop was
/// taken from and the frame rate videos were resampled to. <see cref="ShortSide"/> is null when the
/// checkpoint did not record it (then <see cref="TargetFps"/> is unknown too); with a short side, a null
/// <see cref="TargetFps"/> means each video's own frames.
/// </summary>
public sealed record ClipGeometry(int Frames, int Stride, int CropSize, int? ShortSide = null, double? TargetFps = null);

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
