using CvrlServe.Training.Config;
using CvrlServe.Training.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Modules;

public class R3dEncoderTests
{
    private static long Trainable(nn.Module module) => module.parameters().Where(p => p.requires_grad).Sum(p => p.numel());

    [Fact]
    public void R3d50_FullWidth_HasThePublishedParameterCountAnd2048Outputs()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50);
        // cvrl-method.md §1 and the reference README: R3D-50 (1×) 31.7 M; our count for that layout 31.67 M.
        Assert.InRange(Trainable(encoder), 31_620_000, 31_720_000);
        Assert.Equal(2048, encoder.EmbeddingSize);
    }

    [Theory]
    [InlineData("r3d18", 0.25, 128)]
    [InlineData("r3d18", 1.0, 512)]
    [InlineData("r3d34", 0.5, 256)]
    [InlineData("r3d50", 0.25, 512)]
    [InlineData("r3d101", 0.25, 512)]
    [InlineData("torchvision-r3d18", 1.0, 512)]
    public void EmbeddingSize_FollowsWidthAndBlock(string name, double width, int expected)
    {
        Assert.Equal(expected, R3dArchitecture.Parse(name).EmbeddingSize(width));
    }

    [Fact]
    public void QuarterWidth_StemAndEveryStageAreThin()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        var shapes = encoder.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal([16L, 3, 5, 7, 7], shapes["stem.0.weight"]);
        Assert.Equal([16L, 16, 1, 3, 3], shapes["layer1.0.conv1.weight"]);
        Assert.Equal([64L, 32, 3, 3, 3], shapes["layer3.0.conv1.weight"]); // temporal kernel 3 in layer3
        Assert.Equal([64L, 64, 1, 3, 3], shapes["layer3.0.conv2.weight"]);
        Assert.Equal([128L, 64, 1, 1, 1], shapes["layer4.0.downsample.0.weight"]);
    }

    [Fact]
    public void StateDictKeys_AreStableTorchvisionStyleNames()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        var keys = encoder.state_dict().Keys.ToArray();
        Assert.Equal("stem.0.weight", keys[0]);
        Assert.Contains("stem.1.running_var", keys);
        Assert.Contains("layer1.0.conv3.weight", keys);
        Assert.Contains("layer1.0.downsample.1.num_batches_tracked", keys);
        Assert.Contains("layer4.2.bn3.bias", keys);
        Assert.DoesNotContain("layer1.1.downsample.0.weight", keys);
        // R3D-50: stem + 16 blocks × 3 convs + 4 shortcuts, each conv with a BN of 5 entries.
        Assert.Equal((1 + 16 * 3 + 4) * 6, keys.Length);
    }

    [Theory]
    [InlineData(16, 112, 112, 1)]
    [InlineData(8, 64, 96, 2)]
    [InlineData(4, 32, 32, 3)]
    public void Forward_SeveralClipSizes_PooledEmbedding(int t, int h, int w, int n)
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        encoder.eval();
        using var input = rand([n, 3, t, h, w]);
        using var output = encoder.forward(input);
        Assert.Equal([(long)n, 128], output.shape);
    }

    [Fact]
    public void Stem_ReducesTimeByTwoAndSpaceByFour()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        encoder.eval();
        using var input = rand([1, 3, 16, 224, 224]);
        using var output = encoder.Stem.forward(input);
        Assert.Equal([1L, 16, 8, 56, 56], output.shape);
    }

    [Fact]
    public void Backward_GradientsReachEveryParameter()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        using var head = new ProjectionHead(encoder.EmbeddingSize);
        using var input = rand([2, 3, 4, 32, 32]);
        using var output = head.forward(encoder.forward(input));
        Assert.Equal([2L, 128], output.shape);
        output.square().sum().backward();
        foreach (var (name, parameter) in encoder.named_parameters().Concat(head.named_parameters()))
        {
            Assert.True(parameter.grad is not null, $"no gradient reached {name}");
            // A bias feeding a training-mode BN gets an exactly zero gradient: BN removes the mean.
            bool biasBeforeNorm = name is "mlp.0.bias" or "mlp.3.bias" or "mlp.6.bias";
            Assert.True(biasBeforeNorm || parameter.grad.abs().sum().item<float>() > 0, $"zero gradient at {name}");
        }
    }

    [Fact]
    public void Initialize_ConvKernels_TruncatedNormalWithFanInVariance()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 1.0);
        var weight = encoder.named_parameters().Single(p => p.name == "layer3.0.conv2.weight").parameter;
        double std = Math.Sqrt(1.0 / (256 * 3 * 3)) / 0.87962566103423978;
        // A normal truncated at ±2σ has standard deviation 0.8796σ, so the kernel's is √(1/fan_in).
        Assert.InRange(weight.std().item<float>(), 0.97 * std * 0.8796, 1.03 * std * 0.8796);
        Assert.True(weight.abs().max().item<float>() <= 2 * std + 1e-6);
    }

    [Fact]
    public void Forward_FreshNetworkInEvalMode_ActivationsStayBounded()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        encoder.eval();
        using var noGrad = no_grad();
        using var output = encoder.forward(rand([1, 3, 8, 64, 64]));
        Assert.InRange(output.abs().max().item<float>(), 1e-3, 1e3);
    }

    [Fact]
    public void ProjectionHead_ThreeHiddenLayersThen128()
    {
        using var head = new ProjectionHead(2048);
        Assert.Equal(128, head.OutputSize);
        // 3 × (2048² + 2048 + 2·2048) + 2048·128 + 128 ≈ 12.9 M (cvrl-method.md §2).
        Assert.Equal(3L * (2048 * 2048 + 3 * 2048) + 2048 * 128 + 128, Trainable(head));
    }

    [Fact]
    public void ProjectionHead_HiddenWidthFollowsTheConfig()
    {
        // cpu-tiny: r3d18 at width 0.25 embeds in 128; its head is 3 hidden layers of 512, then 64.
        var config = ExperimentConfig.Load(Path.Combine(AppContext.BaseDirectory, "experiments", "cpu-tiny.json"));
        using var encoder = new R3dEncoder(R3dArchitecture.Parse(config.Model.Architecture), config.Model.Width);
        using var head = new ProjectionHead(encoder.EmbeddingSize, config.Model.HeadLayers, config.Model.HeadHiddenSize, config.Model.ProjectionSize);
        var shapes = head.named_parameters().ToDictionary(p => p.name, p => p.parameter.shape);
        Assert.Equal(512, config.Model.HeadHiddenSize);
        Assert.Equal([512L, 128], shapes["mlp.0.weight"]);
        Assert.Equal([512L], shapes["mlp.1.weight"]);
        Assert.Equal([512L, 512], shapes["mlp.3.weight"]);
        Assert.Equal([512L, 512], shapes["mlp.6.weight"]);
        Assert.Equal([64L, 512], shapes["mlp.9.weight"]);
        using var output = head.forward(rand([2, 128]));
        Assert.Equal([2L, 64], output.shape);

        using var linear = new ProjectionHead(128, hiddenLayers: 0, hidden: 512, output: 64);
        Assert.Equal([64L, 128], Assert.Single(linear.named_parameters(), p => p.name == "mlp.0.weight").parameter.shape);
        var error = Assert.Throws<ConfigException>(() => ExperimentConfig.Load(Path.Combine(AppContext.BaseDirectory, "experiments", "cpu-tiny.json"), ["model.headHiddenSize=0"]));
        Assert.Contains(error.Problems, p => p.Contains("model.headHiddenSize", StringComparison.Ordinal));
    }

    [Fact]
    public void Parse_UnknownName_ListsKnownOnes()
    {
        var error = Assert.Throws<ArgumentException>(() => R3dArchitecture.Parse("r3d7"));
        Assert.Contains("r3d50", error.Message, StringComparison.Ordinal);
    }
}
