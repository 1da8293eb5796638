using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>Conv3d and BatchNorm3d as the R3D family uses them: padding = kernel / 2, no bias, BN per the method doc.</summary>
internal static class Layers
{
    /// <summary>Backbone BN: Keras momentum 0.9 is torch momentum 0.1; eps 1e-5 (cvrl-method.md §1).</summary>
    public const double BatchNormMomentum = 0.1;

    public const double BatchNormEps = 1e-5;

    public static Conv3d Conv(long input, long output, (long T, long H, long W) kernel, (long T, long H, long W) stride) =>
        nn.Conv3d(input, output, kernel, stride, (kernel.T / 2, kernel.H / 2, kernel.W / 2), bias: false);

    public static BatchNorm3d Norm(long features) => nn.BatchNorm3d(features, BatchNormEps, BatchNormMomentum);
}

/// <summary>Two 3D convs with a residual connection: ReLU(bn2(conv2(ReLU(bn1(conv1 x)))) + shortcut).</summary>
public sealed class BasicBlock : nn.Module<Tensor, Tensor>
{
    private readonly Conv3d conv1;
    private readonly BatchNorm3d bn1;
    private readonly Conv3d conv2;
    private readonly BatchNorm3d bn2;
    private readonly Sequential? downsample;

    public BasicBlock(long input, long width, long stride, int temporalStride, int conv1Time, int conv2Time) : base(nameof(BasicBlock))
    {
        conv1 = Layers.Conv(input, width, (conv1Time, 3, 3), (temporalStride, stride, stride));
        bn1 = Layers.Norm(width);
        conv2 = Layers.Conv(width, width, (conv2Time, 3, 3), (1, 1, 1));
        bn2 = Layers.Norm(width);
        downsample = input != width || stride != 1 || temporalStride != 1
            ? nn.Sequential(("0", nn.Conv3d(input, width, (1, 1, 1), (temporalStride, stride, stride), bias: false)), ("1", Layers.Norm(width)))
            : null;
        RegisterComponents();
    }

    /// <summary>The convs in order, each with its BN; ReLU follows every one but the last.</summary>
    internal IEnumerable<(Conv3d Conv, BatchNorm3d Norm)> Convs => [(conv1, bn1), (conv2, bn2)];

    internal Sequential? Downsample => downsample;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.relu(bn1.forward(conv1.forward(input)));
        x = bn2.forward(conv2.forward(x));
        var shortcut = downsample is null ? input : downsample.forward(input);
        return scope.MoveToOuter(nn.functional.relu(x + shortcut));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            conv1.Dispose();
            bn1.Dispose();
            conv2.Dispose();
            bn2.Dispose();
            downsample?.Dispose();
        }

        base.Dispose(disposing);
    }
}

/// <summary>
/// CVRL's bottleneck (cvrl-method.md §1): conv (k_t,1,1) → conv (1,3,3) with the spatial stride
/// (ResNet v1.5) → conv (1,1,1) to 4× width, each with BN, ReLU after the first two and after the sum.
/// </summary>
public sealed class Bottleneck : nn.Module<Tensor, Tensor>
{
    private readonly Conv3d conv1;
    private readonly BatchNorm3d bn1;
    private readonly Conv3d conv2;
    private readonly BatchNorm3d bn2;
    private readonly Conv3d conv3;
    private readonly BatchNorm3d bn3;
    private readonly Sequential? downsample;

    public Bottleneck(long input, long width, long stride, int temporalStride, int conv1Time, int conv2Time) : base(nameof(Bottleneck))
    {
        long output = width * 4;
        conv1 = Layers.Conv(input, width, (conv1Time, 1, 1), (temporalStride, 1, 1));
        bn1 = Layers.Norm(width);
        conv2 = Layers.Conv(width, width, (conv2Time, 3, 3), (1, stride, stride));
        bn2 = Layers.Norm(width);
        conv3 = Layers.Conv(width, output, (1, 1, 1), (1, 1, 1));
        bn3 = Layers.Norm(output);
        downsample = input != output || stride != 1 || temporalStride != 1
            ? nn.Sequential(("0", nn.Conv3d(input, output, (1, 1, 1), (temporalStride, stride, stride), bias: false)), ("1", Layers.Norm(output)))
            : null;
        RegisterComponents();
    }

    internal IEnumerable<(Conv3d Conv, BatchNorm3d Norm)> Convs => [(conv1, bn1), (conv2, bn2), (conv3, bn3)];

    internal Sequential? Downsample => downsample;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        var x = nn.functional.relu(bn1.forward(conv1.forward(input)));
        x = nn.functional.relu(bn2.forward(conv2.forward(x)));
        x = bn3.forward(conv3.forward(x));
        var shortcut = downsample is null ? input : downsample.forward(input);
        return scope.MoveToOuter(nn.functional.relu(x + shortcut));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            conv1.Dispose();
            bn1.Dispose();
            conv2.Dispose();
            bn2.Dispose();
            conv3.Dispose();
            bn3.Dispose();
            downsample?.Dispose();
        }

        base.Dispose(disposing);
    }
}
