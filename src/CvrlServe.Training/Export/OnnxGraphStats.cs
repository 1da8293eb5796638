using CvrlServe.Training.Export.Onnx;

namespace CvrlServe.Training.Export;

/// <summary>Shape inference over the exporter's op set, to count the cost of what is actually served.</summary>
public static class OnnxGraphStats
{
    /// <summary>
    /// FLOPs of one clip [1, 3, T, H, W]: 2 × multiply-accumulates of every Conv (bias, ReLU, pooling and
    /// additions are left out; they are under 1 % here).
    /// </summary>
    public static long ConvFlops(byte[] model, int frames, int height, int width) =>
        Infer(model, frames, height, width).Sum(n => n.Flops);

    /// <summary>
    /// Elements a training step keeps per clip for backward: every node's output, plus every conv's output
    /// once more (the exported graph has batch norm folded in; training keeps its input and output).
    /// </summary>
    public static long ActivationElementsForTraining(byte[] model, int frames, int height, int width) =>
        Infer(model, frames, height, width).Sum(n => n.Elements * (n.Op == "Conv" ? 2 : 1));

    /// <summary>The same count, conv by conv, in graph order.</summary>
    public static IReadOnlyList<(string Node, long Flops)> ConvFlopsByNode(byte[] model, int frames, int height, int width) =>
        Infer(model, frames, height, width).Where(n => n.Op == "Conv").Select(n => (n.Node, n.Flops)).ToArray();

    private static List<(string Node, string Op, long Flops, long Elements)> Infer(byte[] model, int frames, int height, int width)
    {
        var graph = ModelProto.Parser.ParseFrom(model).Graph;
        var weights = graph.Initializer.ToDictionary(t => t.Name, t => t.Dims.ToArray());
        var shapes = new Dictionary<string, long[]> { [graph.Input[0].Name] = [1, 3, frames, height, width] };
        var nodes = new List<(string, string, long, long)>();
        foreach (var node in graph.Node)
        {
            var input = shapes[node.Input[0]];
            long[] output;
            long flops = 0;
            switch (node.OpType)
            {
                case "Conv":
                    var w = weights[node.Input[1]];
                    output = Window(input, w[0], Attribute(node, "kernel_shape"), Attribute(node, "strides"), Attribute(node, "pads"));
                    flops = 2 * w.Aggregate(1L, (a, b) => a * b) * output[2] * output[3] * output[4];
                    break;
                case "MaxPool":
                    output = Window(input, input[1], Attribute(node, "kernel_shape"), Attribute(node, "strides"), Attribute(node, "pads"));
                    break;
                case "GlobalAveragePool":
                    output = [input[0], input[1], 1, 1, 1];
                    break;
                case "Flatten":
                    output = [input[0], input[1..].Aggregate(1L, (a, b) => a * b)];
                    break;
                case "Relu" or "Add":
                    output = input;
                    break;
                default:
                    throw new NotSupportedException($"No shape rule for {node.OpType}.");
            }

            shapes[node.Output[0]] = output;
            nodes.Add((node.Name, node.OpType, flops, output.Aggregate(1L, (a, b) => a * b)));
        }

        return nodes;
    }

    private static long[] Attribute(NodeProto node, string name) => node.Attribute.First(a => a.Name == name).Ints.ToArray();

    private static long[] Window(long[] input, long channels, long[] kernel, long[] strides, long[] pads)
    {
        var output = new long[] { input[0], channels, 0, 0, 0 };
        for (int d = 0; d < 3; d++)
        {
            output[d + 2] = (input[d + 2] + pads[d] + pads[d + 3] - kernel[d]) / strides[d] + 1;
        }

        return output;
    }
}
