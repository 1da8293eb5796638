using CvrlServe.Training.Export;
using CvrlServe.Training.Export.Onnx;
using CvrlServe.Training.Modules;
using Google.Protobuf;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Export;

public class OnnxExporterTests(ITestOutputHelper output)
{
    public static TheoryData<string, double> Networks => new() { { "r3d18", 0.25 }, { "r3d50", 0.25 } };

    [Theory]
    [MemberData(nameof(Networks))]
    public void Export_RandomizedBatchNorm_OnnxRuntimeMatchesTorchSharpAtTwoClipSizes(string architecture, double width)
    {
        using var encoder = new R3dEncoder(R3dArchitecture.Parse(architecture), width);
        OnnxTestKit.RandomizeBatchNorm(encoder, seed: 7);
        byte[] model = OnnxExporter.Export(encoder);

        foreach (long[] shape in new[] { new long[] { 2, 3, 8, 64, 64 }, [1, 3, 16, 112, 96] })
        {
            float[] input = OnnxTestKit.RandomInput(shape, seed: shape[2]);
            float[] expected = OnnxTestKit.TorchForward(encoder, input, shape);
            float[] actual = OnnxTestKit.OrtForward(model, input, shape);
            var parity = Parity.Compare(expected, actual, (int)shape[0]);
            output.WriteLine($"{architecture} x{width} [{string.Join(',', shape)}]: {parity}");
            Assert.Equal(shape[0] * encoder.EmbeddingSize, actual.Length);
            Assert.True(parity.Passes, $"{architecture} [{string.Join(',', shape)}]: {parity}");
        }
    }

    [Fact]
    public void Export_OnePerturbedWeight_ParityFails()
    {
        TorchSharp.torch.random.manual_seed(11);
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        OnnxTestKit.RandomizeBatchNorm(encoder, seed: 3);
        var model = ModelProto.Parser.ParseFrom(OnnxExporter.Export(encoder));
        var weight = model.Graph.Initializer.First(t => t.Name == "layer4.1.conv2.weight");
        byte[] raw = weight.RawData.ToByteArray();
        BitConverter.GetBytes(BitConverter.ToSingle(raw, 0) + 2f).CopyTo(raw, 0);
        weight.RawData = ByteString.CopyFrom(raw);

        long[] shape = [1, 3, 8, 64, 64];
        float[] input = OnnxTestKit.RandomInput(shape, seed: 1);
        var parity = Parity.Compare(OnnxTestKit.TorchForward(encoder, input, shape), OnnxTestKit.OrtForward(model.ToByteArray(), input, shape), 1);
        output.WriteLine($"perturbed: {parity}");
        Assert.False(parity.Passes);
    }

    [Fact]
    public void Export_SameWeights_SameBytes()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        Assert.Equal(OnnxExporter.Export(encoder), OnnxExporter.Export(encoder));
    }

    [Fact]
    public void Export_Model_HasDynamicNcthwInputOpset17AndFoldedNorm()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d18, 0.25);
        var model = ModelProto.Parser.ParseFrom(OnnxExporter.Export(encoder));
        Assert.Equal(17, model.OpsetImport.Single().Version);
        var dims = model.Graph.Input.Single().Type.TensorType.Shape.Dim;
        Assert.Equal(["N", "", "T", "H", "W"], dims.Select(d => d.DimParam));
        Assert.Equal(3, dims[1].DimValue);
        Assert.DoesNotContain(model.Graph.Node, n => n.OpType == "BatchNormalization");
        Assert.Contains(model.Graph.Initializer, t => t.Name == "stem.0.weight");

        using var session = new InferenceSession(model.ToByteArray());
        Assert.Equal(OnnxExporter.InputName, session.InputNames.Single());
        Assert.Equal(OnnxExporter.OutputName, session.OutputNames.Single());
    }

    [Fact]
    public void ConvFlops_R3d50QuarterWidth_HandCountedConvsAndLinearInTime()
    {
        using var encoder = new R3dEncoder(R3dArchitecture.R3d50, 0.25);
        byte[] model = OnnxExporter.Export(encoder);
        var byNode = OnnxGraphStats.ConvFlopsByNode(model, 16, 224, 224).ToDictionary(n => n.Node, n => n.Flops);
        // Stem: 16 out × 3 in × 5·7·7 kernel over 8·112·112 outputs; layer1.0.conv1: 16 × 16 × 1 over 8·56·56.
        Assert.Equal(2L * 16 * 3 * 5 * 7 * 7 * 8 * 112 * 112, byNode["stem.0"]);
        Assert.Equal(2L * 16 * 16 * 8 * 56 * 56, byNode["layer1.0.conv1"]);
        long at16 = OnnxGraphStats.ConvFlops(model, 16, 224, 224);
        Assert.Equal(2 * at16, OnnxGraphStats.ConvFlops(model, 32, 224, 224));
        output.WriteLine($"r3d50 x0.25 at 16x224x224: {at16 / 1e9:F2} GFLOPs");
    }
}
