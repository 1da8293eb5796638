using System.Runtime.InteropServices;
using CvrlServe.Training.Export.Onnx;
using CvrlServe.Training.Modules;
using Google.Protobuf;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Export;

/// <summary>
/// Writes an <see cref="R3dEncoder"/> as an ONNX model (opset 17): input <c>video</c> [N, 3, T, H, W]
/// float32 with N, T, H, W dynamic, output <c>embedding</c> [N, D]. Batch norm is folded into the
/// preceding conv (eval-mode statistics, computed in float64); the graph is Conv, Relu, MaxPool, Add,
/// GlobalAveragePool and Flatten. The same weights always give the same bytes.
/// </summary>
public static class OnnxExporter
{
    public const int Opset = 17;
    public const string InputName = "video";
    public const string OutputName = "embedding";

    /// <summary>ONNX IR version that goes with opset 17.</summary>
    private const long IrVersion = 8;

    public static byte[] Export(R3dEncoder encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        var graph = new GraphProto { Name = $"{encoder.Architecture.Name}-x{encoder.Width:G4}" };
        graph.Input.Add(TensorValue(InputName, [Dim("N"), Dim(3), Dim("T"), Dim("H"), Dim("W")]));
        graph.Output.Add(TensorValue(OutputName, [Dim("N"), Dim(encoder.EmbeddingSize)]));
        var builder = new GraphBuilder(graph);

        string x;
        using (no_grad())
        {
            var stem = encoder.Stem.children().ToArray();
            x = builder.ConvNorm("stem.0", (Conv3d)stem[0], (BatchNorm3d)stem[1], InputName, relu: true);
            if (stem.Length > 3)
            {
                x = builder.MaxPool("stem.3", x);
            }

            for (int s = 0; s < encoder.Stages.Count; s++)
            {
                foreach (var (index, block) in encoder.Stages[s].named_children())
                {
                    string prefix = $"layer{s + 1}.{index}";
                    var (convs, downsample) = block switch
                    {
                        BasicBlock b => (b.Convs.ToArray(), b.Downsample),
                        Bottleneck b => (b.Convs.ToArray(), b.Downsample),
                        _ => throw new NotSupportedException($"Cannot export block {block.GetType().Name}."),
                    };
                    string input = x;
                    for (int c = 0; c < convs.Length; c++)
                    {
                        x = builder.ConvNorm($"{prefix}.conv{c + 1}", convs[c].Conv, convs[c].Norm, x, relu: c < convs.Length - 1);
                    }

                    string shortcut = downsample is null
                        ? input
                        : builder.ConvNorm($"{prefix}.downsample.0", (Conv3d)downsample.children().First(), (BatchNorm3d)downsample.children().Last(), input, relu: false);
                    x = builder.Node("Add", $"{prefix}.add", [x, shortcut]);
                    x = builder.Node("Relu", $"{prefix}.relu", [x]);
                }
            }
        }

        string pooled = builder.Node("GlobalAveragePool", "pool", [x]);
        builder.Node("Flatten", "flatten", [pooled], [Int("axis", 1)], output: OutputName);

        var model = new ModelProto
        {
            IrVersion = IrVersion,
            ProducerName = "cvrl",
            ProducerVersion = "1",
            Graph = graph,
        };
        model.OpsetImport.Add(new OperatorSetIdProto { Domain = "", Version = Opset });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "architecture", Value = encoder.Architecture.Name });
        model.MetadataProps.Add(new StringStringEntryProto { Key = "width", Value = encoder.Width.ToString("R", System.Globalization.CultureInfo.InvariantCulture) });
        return model.ToByteArray();
    }

    private static TensorShapeProto.Types.Dimension Dim(string name) => new() { DimParam = name };

    private static TensorShapeProto.Types.Dimension Dim(long size) => new() { DimValue = size };

    private static ValueInfoProto TensorValue(string name, TensorShapeProto.Types.Dimension[] dims)
    {
        var shape = new TensorShapeProto();
        shape.Dim.AddRange(dims);
        return new ValueInfoProto
        {
            Name = name,
            Type = new TypeProto { TensorType = new TypeProto.Types.Tensor { ElemType = (int)TensorProto.Types.DataType.Float, Shape = shape } },
        };
    }

    private static AttributeProto Ints(string name, params long[] values)
    {
        var attribute = new AttributeProto { Name = name, Type = AttributeProto.Types.AttributeType.Ints };
        attribute.Ints.AddRange(values);
        return attribute;
    }

    private static AttributeProto Int(string name, long value) => new() { Name = name, Type = AttributeProto.Types.AttributeType.Int, I = value };

    /// <summary>Appends nodes and initializers to a graph; value names are the node names.</summary>
    private sealed class GraphBuilder(GraphProto graph)
    {
        public string Node(string op, string name, string[] inputs, AttributeProto[]? attributes = null, string? output = null)
        {
            var node = new NodeProto { OpType = op, Name = name };
            node.Input.AddRange(inputs);
            node.Output.Add(output ?? name);
            if (attributes is not null)
            {
                node.Attribute.AddRange(attributes);
            }

            graph.Node.Add(node);
            return output ?? name;
        }

        /// <summary>Conv with its BN folded in: W' = W·γ/√(σ²+ε), b' = β − μ·γ/√(σ²+ε); then ReLU if asked.</summary>
        public string ConvNorm(string name, Conv3d conv, BatchNorm3d norm, string input, bool relu)
        {
            using var scope = NewDisposeScope();
            var weight = conv.weight!.to_type(ScalarType.Float64);
            var scale = norm.weight!.to_type(ScalarType.Float64) / (norm.running_var!.to_type(ScalarType.Float64) + norm.eps).sqrt();
            var folded = weight * scale.reshape(-1, 1, 1, 1, 1);
            var bias = norm.bias!.to_type(ScalarType.Float64) - norm.running_mean!.to_type(ScalarType.Float64) * scale;
            if (conv.bias is not null)
            {
                bias += conv.bias.to_type(ScalarType.Float64) * scale;
            }

            string weightName = $"{name}.weight";
            string biasName = $"{name}.bias";
            graph.Initializer.Add(Initializer(weightName, folded));
            graph.Initializer.Add(Initializer(biasName, bias));
            var kernel = conv.weight.shape[2..];
            long[] stride = [.. conv.stride!];
            long[] padding = [.. conv.padding!];
            string output = Node("Conv", name, [input, weightName, biasName],
            [
                Ints("kernel_shape", kernel),
                Ints("strides", stride),
                Ints("pads", [.. padding, .. padding]),
                Ints("dilations", 1, 1, 1),
            ]);
            return relu ? Node("Relu", $"{name}.relu", [output]) : output;
        }

        public string MaxPool(string name, string input) => Node("MaxPool", name, [input],
        [
            Ints("kernel_shape", 1, 3, 3),
            Ints("strides", 1, 2, 2),
            Ints("pads", 0, 1, 1, 0, 1, 1),
        ]);

        private static TensorProto Initializer(string name, Tensor values)
        {
            var data = values.to_type(ScalarType.Float32).contiguous().cpu();
            var tensor = new TensorProto { Name = name, DataType = (int)TensorProto.Types.DataType.Float };
            tensor.Dims.AddRange(data.shape);
            float[] floats = data.data<float>().ToArray();
            tensor.RawData = ByteString.CopyFrom(MemoryMarshal.AsBytes(floats.AsSpan()));
            return tensor;
        }
    }
}
