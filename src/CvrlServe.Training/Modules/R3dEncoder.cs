using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>
/// The R3D family from one spec row and a width multiplier: stem → layer1..layer4 → global average
/// pool over (T, H, W) → [N, D]. Input [N, 3, T, H, W] in the manifest's value range. State-dict keys
/// follow torchvision (<c>stem.0.weight</c>, <c>layer3.1.conv1.weight</c>, <c>layer2.0.downsample.1.running_mean</c>).
/// </summary>
public sealed class R3dEncoder : nn.Module<Tensor, Tensor>
{
    private readonly Sequential stem;
    private readonly Sequential layer1;
    private readonly Sequential layer2;
    private readonly Sequential layer3;
    private readonly Sequential layer4;

    public R3dEncoder(R3dArchitecture architecture, double width = 1.0) : base("R3dEncoder")
    {
        ArgumentNullException.ThrowIfNull(architecture);
        if (!(width > 0 && width <= 8))
        {
            throw new ArgumentOutOfRangeException(nameof(width), width, "The width multiplier must be in (0, 8].");
        }

        Architecture = architecture;
        Width = width;
        int stemChannels = R3dArchitecture.StemChannels(width);
        var s = architecture.Stem;
        var stemModules = new List<(string, nn.Module<Tensor, Tensor>)>
        {
            ("0", Layers.Conv(3, stemChannels, s.Kernel, s.Stride)),
            ("1", Layers.Norm(stemChannels)),
            ("2", nn.ReLU()),
        };
        if (s.MaxPool)
        {
            stemModules.Add(("3", nn.MaxPool3d((1, 3, 3), (1, 2, 2), (0, 1, 1))));
        }

        stem = nn.Sequential(stemModules);
        long channels = stemChannels;
        var stages = new Sequential[4];
        for (int i = 0; i < 4; i++)
        {
            int stageWidth = R3dArchitecture.StageWidth(i, width);
            int stride = i == 0 ? 1 : 2;
            var blocks = new List<(string, nn.Module<Tensor, Tensor>)>();
            for (int b = 0; b < architecture.Layers[i]; b++)
            {
                int blockStride = b == 0 ? stride : 1;
                int temporalStride = architecture.TemporalDownsample ? blockStride : 1;
                nn.Module<Tensor, Tensor> block = architecture.Block == BlockKind.Bottleneck
                    ? new Bottleneck(channels, stageWidth, blockStride, temporalStride, architecture.Conv1TemporalKernel[i], architecture.Conv2TemporalKernel[i])
                    : new BasicBlock(channels, stageWidth, blockStride, temporalStride, architecture.Conv1TemporalKernel[i], architecture.Conv2TemporalKernel[i]);
                blocks.Add((b.ToString(System.Globalization.CultureInfo.InvariantCulture), block));
                channels = (long)stageWidth * architecture.Expansion;
            }

            stages[i] = nn.Sequential(blocks);
        }

        (layer1, layer2, layer3, layer4) = (stages[0], stages[1], stages[2], stages[3]);
        EmbeddingSize = (int)channels;
        RegisterComponents();
        Initialize(this);
    }

    public R3dArchitecture Architecture { get; }

    public double Width { get; }

    /// <summary>Size of the pooled output.</summary>
    public int EmbeddingSize { get; }

    internal Sequential Stem => stem;

    internal IReadOnlyList<Sequential> Stages => [layer1, layer2, layer3, layer4];

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = layer4.forward(layer3.forward(layer2.forward(layer1.forward(stem.forward(input)))));
        return scope.MoveToOuter(x.mean([2, 3, 4]));
    }

    /// <summary>
    /// Keras defaults, as the reference code: conv kernels VarianceScaling(1, fan_in, truncated normal),
    /// i.e. N(0, (1/fan_in)/0.8796²) cut at ±2σ; BN γ = 1, β = 0 (cvrl-method.md §1).
    /// </summary>
    internal static void Initialize(nn.Module module)
    {
        using var noGrad = no_grad();
        foreach (var (_, child) in module.named_modules())
        {
            switch (child)
            {
                case Conv3d conv:
                    long fanIn = conv.weight!.shape.Skip(1).Aggregate(1L, (a, b) => a * b);
                    double std = Math.Sqrt(1.0 / fanIn) / 0.87962566103423978;
                    conv.weight.copy_(TruncatedNormal(conv.weight.shape, std));
                    break;
                case BatchNorm3d norm:
                    nn.init.ones_(norm.weight!);
                    nn.init.zeros_(norm.bias!);
                    break;
            }
        }
    }

    /// <summary>
    /// N(0, std²) cut at ±2σ by redrawing what falls outside. (TorchSharp 0.107's
    /// <c>nn.init.trunc_normal_</c> fills the tensor with one constant, so it is not used.)
    /// </summary>
    internal static Tensor TruncatedNormal(long[] shape, double std)
    {
        using var scope = NewDisposeScope();
        var values = randn(shape) * std;
        for (int attempt = 0; attempt < 20; attempt++)
        {
            var outside = values.abs() > 2 * std;
            if (!outside.any().item<bool>())
            {
                break;
            }

            values = where(outside, randn(shape) * std, values);
        }

        return scope.MoveToOuter(values.clamp(-2 * std, 2 * std));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            stem.Dispose();
            layer1.Dispose();
            layer2.Dispose();
            layer3.Dispose();
            layer4.Dispose();
        }

        base.Dispose(disposing);
    }
}
