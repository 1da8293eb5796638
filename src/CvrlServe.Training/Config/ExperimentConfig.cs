using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using System.Text.Json.Serialization;
using CvrlServe.Core.Video;
using CvrlServe.Training.Augment;
using CvrlServe.Training.Modules;

namespace CvrlServe.Training.Config;

/// <summary>The encoder and projection head to train.</summary>
/// <param name="HeadLayers">Hidden layers of the projection head (Linear, BN, ReLU each); 0 is one Linear.</param>
/// <param name="HeadHiddenSize">
/// Width of the head's hidden layers. The reference's are 2048 whatever the encoder's width (cvrl-method.md §2),
/// which for r3d50 at width 1 is also the embedding size.
/// </param>
/// <param name="ProjectionSize">Output of the head, L2-normalized before the loss.</param>
public sealed record ModelSection(string Architecture = "r3d50", double Width = 1.0, int HeadLayers = 3, int HeadHiddenSize = 2048, int ProjectionSize = 128);

/// <summary>Clips, frame grid and the training cache.</summary>
/// <param name="Frames">Frames per clip.</param>
/// <param name="Stride">Grid frames between clip frames.</param>
/// <param name="CropSize">Side of the random resized crop fed to the network.</param>
/// <param name="ShortSide">Short side of the cached frames the crop is taken from.</param>
/// <param name="TargetFps">Resample every video to this rate; null keeps each video's own frames.</param>
/// <param name="MaxCachedFrames">Frames kept per video in the cache.</param>
/// <param name="Interval">Distribution of the gap between the two clips of a video.</param>
public sealed record DataSection(
    int Frames = 16,
    int Stride = 2,
    int CropSize = 224,
    int ShortSide = 256,
    double? TargetFps = null,
    int MaxCachedFrames = 300,
    IntervalDistribution Interval = IntervalDistribution.LinearDecreasing);

/// <summary>Optimizer and schedule: linear warm-up from 0, then cosine to 0 (cvrl-method.md §6).</summary>
/// <param name="Kind"><c>sgd</c> (the reference), <c>lars</c> or <c>adamw</c>.</param>
/// <param name="LearningRate">
/// The peak rate at <see cref="ReferenceBatch"/> videos per step. The run uses it scaled linearly to its own
/// batch (<see cref="ExperimentConfig.ScaledLearningRate"/>). The reference's 0.32 was applied as is at its
/// global batch of 1024 (per replica, not divided by the replica count), so the paper config says 0.32 at
/// reference batch 1024; whether 0.32 was itself derived as 0.08 × 1024/256 is unconfirmed.
/// </param>
/// <param name="WeightDecay">On conv and linear kernels only: coupled L2 for SGD and LARS, decoupled for AdamW.</param>
/// <param name="WarmupSteps">Steps of linear warm-up; set this or <paramref name="WarmupEpochs"/>, not both (neither: the reference's 1787).</param>
/// <param name="ReferenceBatch">The batch size <paramref name="LearningRate"/> is stated for.</param>
/// <param name="WarmupEpochs">Warm-up in epochs of the training videos, resolved to steps when the run starts.</param>
public sealed record OptimizerSection(
    string Kind = "sgd",
    double LearningRate = 0.32,
    double Momentum = 0.9,
    bool Nesterov = false,
    double WeightDecay = 1e-6,
    int? WarmupSteps = null,
    double LarsEta = 0.001,
    int ReferenceBatch = 256,
    double? WarmupEpochs = null);

/// <summary>
/// An experiment's settings, loaded from a JSON file under <c>experiments/</c>, overridden from the
/// command line, validated, and saved resolved with every checkpoint. Unknown keys are errors.
/// </summary>
public sealed record ExperimentConfig
{
    public static JsonSerializerOptions Json { get; } = new(JsonSerializerDefaults.Web)
    {
        WriteIndented = true,
        Converters = { new JsonStringEnumConverter(JsonNamingPolicy.CamelCase) },
        UnmappedMemberHandling = JsonUnmappedMemberHandling.Disallow,
    };

    public string Name { get; init; } = "experiment";

    public ModelSection Model { get; init; } = new();

    public DataSection Data { get; init; } = new();

    /// <summary>Spatial augmentation; its crop size is always <see cref="DataSection.CropSize"/>.</summary>
    public AugmentOptions Augment { get; init; } = new();

    public OptimizerSection Optimizer { get; init; } = new();

    public double Temperature { get; init; } = 0.1;

    /// <summary>Videos per step; each gives two clips, so the network sees 2 × this.</summary>
    public int BatchSize { get; init; } = 1024;

    /// <summary>Training steps; set this or <see cref="Epochs"/>, not both. Null until epochs are resolved.</summary>
    public int? Steps { get; init; }

    /// <summary>
    /// Training length in epochs of the training videos: one epoch is ⌈videos / batchSize⌉ steps, and the
    /// total is rounded up. Known only once the videos are cached, so the trainers resolve it
    /// (<see cref="Resolve"/>); the resolved config, with steps and no epochs, is the one saved.
    /// </summary>
    public double? Epochs { get; init; }

    public int Seed { get; init; }

    public int CheckpointEvery { get; init; } = 1000;

    /// <summary>Batches prepared ahead of the step on a background thread.</summary>
    public int Prefetch { get; init; } = 2;

    /// <summary>
    /// Reads <paramref name="path"/>, applies <c>key.path=value</c> overrides (JSON values, or plain
    /// strings), and validates. Every problem is reported at once.
    /// </summary>
    public static ExperimentConfig Load(string path, IEnumerable<string>? overrides = null)
    {
        if (!File.Exists(path))
        {
            throw new ConfigException([$"no config file at '{path}'"]);
        }

        JsonNode root;
        try
        {
            root = JsonNode.Parse(File.ReadAllText(path)) ?? throw new ConfigException([$"'{path}' is empty"]);
        }
        catch (JsonException e)
        {
            throw new ConfigException([$"'{path}' is not valid JSON: {e.Message}"]);
        }

        foreach (string assignment in overrides ?? [])
        {
            Apply(root, assignment);
        }

        ExperimentConfig config;
        try
        {
            config = root.Deserialize<ExperimentConfig>(Json) ?? throw new ConfigException([$"'{path}' is empty"]);
        }
        catch (JsonException e)
        {
            throw new ConfigException([$"'{path}': {e.Message}"]);
        }

        config = config with { Augment = config.Augment with { CropSize = config.Data.CropSize } };
        config.Validate();
        return config;
    }

    /// <summary>The run's peak learning rate: <c>learningRate × batchSize / referenceBatch</c> (linear scaling).</summary>
    [JsonIgnore]
    public double ScaledLearningRate => Optimizer.LearningRate * BatchSize / Optimizer.ReferenceBatch;

    /// <summary>Total steps of a resolved config.</summary>
    [JsonIgnore]
    public int TotalSteps => Steps ?? throw new InvalidOperationException("epochs are not resolved to steps yet: call Resolve with the number of training videos");

    /// <summary>Warm-up steps of a resolved config.</summary>
    [JsonIgnore]
    public int TotalWarmupSteps => Optimizer.WarmupSteps ?? throw new InvalidOperationException("warm-up epochs are not resolved to steps yet: call Resolve");

    /// <summary>
    /// This config with <see cref="Epochs"/> and <see cref="OptimizerSection.WarmupEpochs"/> turned into steps
    /// for <paramref name="trainingVideos"/> videos (an epoch is ⌈videos / batchSize⌉ steps; totals round up),
    /// and no warm-up setting at all read as the reference's 1787 steps. Validated again.
    /// </summary>
    public ExperimentConfig Resolve(int trainingVideos)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(trainingVideos);
        int perEpoch = (trainingVideos + BatchSize - 1) / BatchSize;
        int InSteps(double epochs) => (int)Math.Ceiling(epochs * perEpoch);
        var resolved = this with
        {
            Steps = Steps ?? InSteps(Epochs!.Value),
            Epochs = null,
            Optimizer = Optimizer with
            {
                WarmupSteps = Optimizer.WarmupSteps ?? (Optimizer.WarmupEpochs is { } warmup ? InSteps(warmup) : 1787),
                WarmupEpochs = null,
            },
        };
        resolved.Validate();
        return resolved;
    }

    /// <summary>One line for the run's log: the rate and length it resolved to, and from what.</summary>
    public string DescribeSchedule(ExperimentConfig resolved, int trainingVideos)
    {
        ArgumentNullException.ThrowIfNull(resolved);
        string length = Epochs is { } epochs ? $"{epochs:G} epochs of {(trainingVideos + BatchSize - 1) / BatchSize} steps ({trainingVideos} videos / batch {BatchSize})" : "as set";
        string warmup = Optimizer.WarmupEpochs is { } warmupEpochs ? $" ({warmupEpochs:G} epochs)" : "";
        return $"Learning rate {resolved.ScaledLearningRate:G4} = {Optimizer.LearningRate:G4} x batch {BatchSize} / reference batch {Optimizer.ReferenceBatch}; " +
            $"{resolved.TotalSteps} steps, {length}; warm-up {resolved.TotalWarmupSteps} steps{warmup}.";
    }

    /// <summary>
    /// Fills, in a config saved with a checkpoint, the keys added since, with what the code that wrote it
    /// did: the head's hidden layers as wide as the encoder's embedding, the learning rate used as is (its
    /// reference batch the run's batch).
    /// </summary>
    public static void UpgradeSaved(JsonObject config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config["model"] is JsonObject model && model["headHiddenSize"] is null
            && R3dArchitecture.Find(model["architecture"]?.GetValue<string>() ?? "") is { } architecture)
        {
            model["headHiddenSize"] = architecture.EmbeddingSize(model["width"]?.GetValue<double>() ?? 1.0);
        }

        if (config["optimizer"] is JsonObject optimizer && optimizer["referenceBatch"] is null && config["batchSize"] is { } batch)
        {
            optimizer["referenceBatch"] = batch.GetValue<int>();
        }
    }

    public string ToJson() => JsonSerializer.Serialize(this, Json);

    /// <summary>SHA-256 of the resolved config: the identity of a training recipe.</summary>
    public string Sha256() => Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(ToJson())));

    public void Validate()
    {
        var problems = new List<string>();
        void Check(bool ok, string message)
        {
            if (!ok)
            {
                problems.Add(message);
            }
        }

        Check(R3dArchitecture.Find(Model.Architecture) is not null, R3dArchitecture.UnknownMessage(Model.Architecture));
        Check(Model.Width is > 0 and <= 8, $"model.width must be in (0, 8] (got {Model.Width})");
        Check(Model.HeadLayers is >= 0 and <= 8, "model.headLayers must be in [0, 8]");
        Check(Model.HeadHiddenSize >= 1, "model.headHiddenSize must be positive");
        Check(Model.ProjectionSize >= 1, "model.projectionSize must be positive");
        Check(Data.Frames >= 1 && Data.Stride >= 1, "data.frames and data.stride must be positive");
        Check(Data.CropSize >= 8, "data.cropSize must be at least 8");
        Check(Data.ShortSide >= Data.CropSize, $"data.shortSide ({Data.ShortSide}) must be at least data.cropSize ({Data.CropSize})");
        Check(Data.TargetFps is null or (> 0 and <= 240), "data.targetFps must be in (0, 240]");
        Check(Data.MaxCachedFrames >= 1, "data.maxCachedFrames must be positive");
        Check(Optimizer.Kind is "sgd" or "lars" or "adamw", $"optimizer.kind must be sgd, lars or adamw (got '{Optimizer.Kind}')");
        Check(Optimizer.LearningRate > 0, "optimizer.learningRate must be positive");
        Check(Optimizer.Momentum is >= 0 and < 1, "optimizer.momentum must be in [0, 1)");
        Check(Optimizer.WeightDecay >= 0, "optimizer.weightDecay must not be negative");
        Check(Optimizer.ReferenceBatch >= 1, "optimizer.referenceBatch must be positive");
        Check(Optimizer.WarmupSteps is null || Optimizer.WarmupEpochs is null, "set optimizer.warmupSteps or optimizer.warmupEpochs, not both");
        Check(Optimizer.WarmupSteps is not { } warmup || (warmup >= 0 && (Steps is null || warmup <= Steps)), "optimizer.warmupSteps must be in [0, steps]");
        Check(Optimizer.WarmupEpochs is null or >= 0, "optimizer.warmupEpochs must not be negative");
        Check(Steps is null || Epochs is null, "set steps or epochs, not both (--steps replaces epochs; with --set, also --set epochs=null or steps=null)");
        Check(Steps is not null || Epochs is not null, "set steps or epochs");
        Check(Epochs is null or > 0, "epochs must be positive");
        Check(Temperature > 0, "temperature must be positive");
        Check(BatchSize >= 2, "batchSize must be at least 2: the loss needs other videos as negatives");
        Check(Steps is null or >= 1, "steps must be positive");
        Check(CheckpointEvery >= 1, "checkpointEvery must be positive");
        Check(Prefetch is >= 1 and <= 16, "prefetch must be in [1, 16]");
        Check(Augment.BlurProbability.Length == 2 && Augment.SolarizeProbability.Length == 2, "augment.blurProbability and augment.solarizeProbability need one value per clip (2)");
        Check(Augment.MinArea > 0 && Augment.MinArea <= Augment.MaxArea && Augment.MaxArea <= 1, "augment area range must satisfy 0 < minArea <= maxArea <= 1");
        Check(Augment.MinAspect > 0 && Augment.MinAspect <= Augment.MaxAspect, "augment aspect range must satisfy 0 < minAspect <= maxAspect");
        if (problems.Count > 0)
        {
            throw new ConfigException(problems);
        }
    }

    private static void Apply(JsonNode root, string assignment)
    {
        int equals = assignment.IndexOf('=', StringComparison.Ordinal);
        if (equals <= 0)
        {
            throw new ConfigException([$"override '{assignment}' is not key.path=value"]);
        }

        string[] path = assignment[..equals].Split('.');
        string text = assignment[(equals + 1)..];
        JsonNode? value;
        try
        {
            value = JsonNode.Parse(text);
        }
        catch (JsonException)
        {
            value = JsonValue.Create(text);
        }

        var node = root;
        foreach (string key in path[..^1])
        {
            node = node[key] ??= new JsonObject();
        }

        node[path[^1]] = value;
    }
}

/// <summary>A config that cannot be trained; the message lists every problem.</summary>
public sealed class ConfigException(IReadOnlyList<string> problems)
    : Exception("Bad experiment config:\n  " + string.Join("\n  ", problems))
{
    public IReadOnlyList<string> Problems { get; } = problems;
}
