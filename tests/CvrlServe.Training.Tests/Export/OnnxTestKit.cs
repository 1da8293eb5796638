using CvrlServe.Training.Modules;
using Microsoft.ML.OnnxRuntime;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Export;

/// <summary>Helpers for parity tests: non-trivial batch norm, a TorchSharp reference run and an ONNX Runtime run.</summary>
internal static class OnnxTestKit
{
    /// <summary>
    /// Sets every BN's running mean, running variance, γ and β to random non-trivial values: fresh BN
    /// (0, 1, 1, 0) would hide mistakes in eps, variance or folding.
    /// </summary>
    public static void RandomizeBatchNorm(nn.Module module, long seed)
    {
        using var noGrad = no_grad();
        var generator = new Generator((ulong)seed);
        foreach (var (_, child) in module.named_modules())
        {
            if (child is BatchNorm3d norm)
            {
                long c = norm.weight!.shape[0];
                norm.running_mean!.copy_(randn([c], generator: generator) * 0.2);
                norm.running_var!.copy_(rand([c], generator: generator) * 1.5 + 0.5);
                norm.weight.copy_(rand([c], generator: generator) + 0.5);
                norm.bias!.copy_(randn([c], generator: generator) * 0.2);
            }
        }
    }

    public static float[] RandomInput(long[] shape, long seed) =>
        rand(shape, generator: new Generator((ulong)seed)).data<float>().ToArray();

    /// <summary>The encoder's eval-mode output for <paramref name="input"/>.</summary>
    public static float[] TorchForward(R3dEncoder encoder, float[] input, long[] shape)
    {
        encoder.eval();
        using var noGrad = no_grad();
        using var x = tensor(input, shape);
        using var y = encoder.forward(x);
        return y.data<float>().ToArray();
    }

    /// <summary>ONNX Runtime (CPU) output of the model's first output for <paramref name="input"/>.</summary>
    public static float[] OrtForward(byte[] model, float[] input, long[] shape)
    {
        using var options = new SessionOptions { IntraOpNumThreads = 2 };
        using var session = new InferenceSession(model, options);
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [session.InputNames[0]], [value], [session.OutputNames[0]]);
        return outputs[0].GetTensorDataAsSpan<float>().ToArray();
    }
}
