namespace CvrlServe.Training.Modules;

/// <summary>Residual block kind: two 3D convs (ResNet-18/34 style) or 1-3-1 bottleneck with 4× expansion.</summary>
public enum BlockKind
{
    Basic,
    Bottleneck,
}

/// <summary>The stem: one conv (padding = kernel / 2) + BN + ReLU, then optionally max-pool (1,3,3) stride (1,2,2).</summary>
public sealed record StemSpec((long T, long H, long W) Kernel, (long T, long H, long W) Stride, bool MaxPool);

/// <summary>
/// One row of the R3D spec table: everything that differs between the networks the single builder
/// (<see cref="R3dEncoder"/>) makes.
/// </summary>
/// <param name="Name">Name used on the command line and in manifests.</param>
/// <param name="Block">Residual block kind.</param>
/// <param name="Layers">Blocks per stage (layer1..layer4).</param>
/// <param name="Stem">Stem conv geometry.</param>
/// <param name="Conv1TemporalKernel">Temporal kernel of each block's first conv, per stage.</param>
/// <param name="Conv2TemporalKernel">Temporal kernel of each block's second conv (the 3×3 one), per stage.</param>
/// <param name="TemporalDownsample">Whether stages 2–4 also halve time (torchvision) or only space (CVRL).</param>
public sealed record R3dArchitecture(
    string Name,
    BlockKind Block,
    int[] Layers,
    StemSpec Stem,
    int[] Conv1TemporalKernel,
    int[] Conv2TemporalKernel,
    bool TemporalDownsample)
{
    private static readonly StemSpec CvrlStem = new((5, 7, 7), (2, 2, 2), MaxPool: true);
    private static readonly int[] CvrlConv1 = [1, 1, 3, 3];
    private static readonly int[] Ones = [1, 1, 1, 1];

    /// <summary>
    /// R3D-18 and R3D-34 are not in the CVRL code (it registers bottleneck depths ≥ 50 only). Ours keep
    /// CVRL's stem and temporal-kernel convention on basic blocks: kernel 3 on <c>conv1</c> of every
    /// block in layer3/layer4, 1 everywhere else. A team choice for small models, not the paper's.
    /// </summary>
    public static R3dArchitecture R3d18 { get; } = new("r3d18", BlockKind.Basic, [2, 2, 2, 2], CvrlStem, CvrlConv1, Ones, false);

    /// <inheritdoc cref="R3d18"/>
    public static R3dArchitecture R3d34 { get; } = new("r3d34", BlockKind.Basic, [3, 4, 6, 3], CvrlStem, CvrlConv1, Ones, false);

    /// <summary>CVRL's R3D-50 (cvrl-method.md §1): 31.67 M parameters, 2048-d output at 1×.</summary>
    public static R3dArchitecture R3d50 { get; } = new("r3d50", BlockKind.Bottleneck, [3, 4, 6, 3], CvrlStem, CvrlConv1, Ones, false);

    public static R3dArchitecture R3d101 { get; } = new("r3d101", BlockKind.Bottleneck, [3, 4, 23, 3], CvrlStem, CvrlConv1, Ones, false);

    public static R3dArchitecture R3d152 { get; } = new("r3d152", BlockKind.Bottleneck, [3, 8, 36, 3], CvrlStem, CvrlConv1, Ones, false);

    /// <summary>
    /// torchvision's <c>r3d_18</c> (VideoResNet): stem (3,7,7) stride (1,2,2) without max-pool, 3×3×3
    /// convs throughout, and stages 2–4 halve time as well as space. For serving PyTorch-trained weights.
    /// </summary>
    public static R3dArchitecture TorchvisionR3d18 { get; } = new("torchvision-r3d18", BlockKind.Basic, [2, 2, 2, 2],
        new StemSpec((3, 7, 7), (1, 2, 2), MaxPool: false), [3, 3, 3, 3], [3, 3, 3, 3], true);

    public static IReadOnlyList<R3dArchitecture> All { get; } = [R3d18, R3d34, R3d50, R3d101, R3d152, TorchvisionR3d18];

    /// <summary>Looks an architecture up by name; the message lists the known ones.</summary>
    public static R3dArchitecture Parse(string name) =>
        Find(name) ?? throw new ArgumentException(UnknownMessage(name), nameof(name));

    public static R3dArchitecture? Find(string name) =>
        All.FirstOrDefault(a => string.Equals(a.Name, name, StringComparison.OrdinalIgnoreCase));

    public static string UnknownMessage(string name) =>
        $"Unknown architecture '{name}'. Known: {string.Join(", ", All.Select(a => a.Name))}.";

    /// <summary>Output channels of a block relative to its bottleneck width.</summary>
    public int Expansion => Block == BlockKind.Bottleneck ? 4 : 1;

    /// <summary>Channels of the stem at a width multiplier.</summary>
    public static int StemChannels(double width) => Scale(64, width);

    /// <summary>Bottleneck (inner) width of stage <paramref name="stage"/> (0..3) at a width multiplier.</summary>
    public static int StageWidth(int stage, double width) => Scale(64 << stage, width);

    /// <summary>Embedding size: the last stage's output channels.</summary>
    public int EmbeddingSize(double width) => StageWidth(3, width) * Expansion;

    private static int Scale(int channels, double width) => Math.Max(1, (int)Math.Round(channels * width));
}
