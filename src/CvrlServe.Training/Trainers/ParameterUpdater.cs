using CvrlServe.Training.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Trainers;

/// <summary>
/// The optimizer step with the reference's weight decay: on conv and linear kernels only (parameters
/// of two or more dimensions), never on batch norm or biases. SGD and LARS get coupled L2 (wd·w added to
/// the gradient, the same as ½·wd·‖w‖² in the loss); AdamW decays decoupled (w ← w·(1 − lr·wd)).
/// <para>
/// All three updates are written here rather than taken from <c>torch.optim</c>: TorchSharp's optimizers
/// pass numbers to native code as implicitly converted <see cref="Scalar"/>s that nothing keeps alive, so
/// the GC may finalize one while the native call still reads it. That killed a supervised run here at step
/// 705 ("Unknown scalar type" in <c>add_</c> inside <c>AdamW.step</c>). Every Scalar below is created
/// explicitly and disposed after the last call that uses it. The updates follow PyTorch's definitions
/// (SGD with momentum: b ← μ·b + g, step b, or g + μ·b with Nesterov; AdamW: β 0.9/0.999, ε 1e-8, bias
/// corrected; LARS: trust ratio η‖w‖/‖g‖ on kernels, plain momentum elsewhere) and are tested against
/// TorchSharp's SGD and AdamW.
/// </para>
/// </summary>
public sealed class ParameterUpdater : IDisposable
{
    private const double Beta1 = 0.9;
    private const double Beta2 = 0.999;
    private const double Epsilon = 1e-8;
    private static readonly byte[] Magic = "CVRLOPT2"u8.ToArray();

    private readonly OptimizerSection _settings;
    private readonly Parameter[] _parameters;
    private readonly bool[] _isKernel;

    // Momentum (SGD, LARS) or the first moment (AdamW), and AdamW's second moment; created on first use.
    private readonly Tensor?[] _first;
    private readonly Tensor?[] _second;
    private long _steps;

    public ParameterUpdater(IEnumerable<Parameter> parameters, OptimizerSection settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        if (settings.Kind is not ("sgd" or "adamw" or "lars"))
        {
            throw new ArgumentException($"Unknown optimizer '{settings.Kind}'.", nameof(settings));
        }

        _settings = settings;
        _parameters = parameters.Where(p => p.requires_grad).ToArray();
        _isKernel = _parameters.Select(p => p.dim() >= 2).ToArray();
        _first = new Tensor?[_parameters.Length];
        _second = new Tensor?[_parameters.Length];
    }

    public void ZeroGrad()
    {
        foreach (var p in _parameters)
        {
            p.grad?.zero_();
        }
    }

    public void Step(double learningRate)
    {
        using var noGrad = no_grad();
        _steps++;
        switch (_settings.Kind)
        {
            case "sgd":
                SgdStep(learningRate);
                break;
            case "adamw":
                AdamWStep(learningRate);
                break;
            default:
                LarsStep(learningRate);
                break;
        }
    }

    /// <summary>Writes the optimizer's state (step count and every buffer) for <c>--resume</c>.</summary>
    public void Save(string path)
    {
        using var writer = new BinaryWriter(File.Create(path));
        writer.Write(Magic);
        writer.Write(_settings.Kind);
        writer.Write(_steps);
        writer.Write(_parameters.Length);
        foreach (var buffers in new[] { _first, _second })
        {
            foreach (var buffer in buffers)
            {
                writer.Write(buffer is not null);
                buffer?.Save(writer);
            }
        }
    }

    public void Load(string path)
    {
        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.BaseStream.Length < Magic.Length || !reader.ReadBytes(Magic.Length).AsSpan().SequenceEqual(Magic))
        {
            throw new InvalidDataException($"'{path}' is not optimizer state this version writes (checkpoints from before the optimizers were rewritten cannot be resumed; start the run again).");
        }

        string kind = reader.ReadString();
        long steps = reader.ReadInt64();
        if (kind != _settings.Kind || reader.ReadInt32() != _parameters.Length)
        {
            throw new InvalidDataException($"'{path}' holds {kind} state for a different model or optimizer.");
        }

        _steps = steps;
        foreach (var buffers in new[] { _first, _second })
        {
            for (int i = 0; i < buffers.Length; i++)
            {
                buffers[i]?.Dispose();
                buffers[i] = reader.ReadBoolean() ? TensorExtensionMethods.Load(reader).to(_parameters[i].device) : null;
            }
        }
    }

    public void Dispose()
    {
        foreach (var buffer in _first.Concat(_second))
        {
            buffer?.Dispose();
        }
    }

    private bool Decays(int i) => _isKernel[i] && _settings.WeightDecay != 0;

    private Tensor Buffer(Tensor?[] buffers, int i) =>
        buffers[i] ??= zeros_like(_parameters[i]).DetachFromDisposeScope();

    private void SgdStep(double learningRate)
    {
        using var decay = _settings.WeightDecay.ToScalar();
        using var momentum = _settings.Momentum.ToScalar();
        using var descent = (-learningRate).ToScalar();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.grad is not { } grad)
            {
                continue;
            }

            using var scope = NewDisposeScope();
            var update = Decays(i) ? grad.add(p, alpha: decay) : grad.clone();
            if (_settings.Momentum != 0)
            {
                // PyTorch starts the buffer at the first gradient: b ← μ·0 + g is the same thing.
                var buffer = Buffer(_first, i);
                buffer.mul_(momentum).add_(update);
                update = _settings.Nesterov ? update.add_(buffer, alpha: momentum) : buffer;
            }

            p.add_(update, alpha: descent);
        }
    }

    private void AdamWStep(double learningRate)
    {
        double correction1 = 1 - Math.Pow(Beta1, _steps);
        double correction2 = 1 - Math.Pow(Beta2, _steps);
        using var shrink = (1 - learningRate * _settings.WeightDecay).ToScalar();
        using var beta1 = Beta1.ToScalar();
        using var beta2 = Beta2.ToScalar();
        using var rest1 = (1 - Beta1).ToScalar();
        using var rest2 = (1 - Beta2).ToScalar();
        using var rootCorrection2 = Math.Sqrt(correction2).ToScalar();
        using var epsilon = Epsilon.ToScalar();
        using var stepSize = (-learningRate / correction1).ToScalar();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.grad is not { } grad)
            {
                continue;
            }

            using var scope = NewDisposeScope();
            if (Decays(i))
            {
                p.mul_(shrink);
            }

            var first = Buffer(_first, i).mul_(beta1).add_(grad, alpha: rest1);
            var second = Buffer(_second, i).mul_(beta2).addcmul_(grad, grad, value: rest2);
            var denominator = second.sqrt().div_(rootCorrection2).add_(epsilon);
            p.addcdiv_(first, denominator, value: stepSize);
        }
    }

    private void LarsStep(double learningRate)
    {
        using var decay = _settings.WeightDecay.ToScalar();
        using var momentum = _settings.Momentum.ToScalar();
        using var rate = learningRate.ToScalar();
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.grad is not { } grad)
            {
                continue;
            }

            using var scope = NewDisposeScope();
            var update = Decays(i) ? grad.add(p, alpha: decay) : grad.clone();
            if (_isKernel[i])
            {
                double weightNorm = p.norm().item<float>();
                double updateNorm = update.norm().item<float>();
                using var trust = (weightNorm > 0 && updateNorm > 0 ? _settings.LarsEta * weightNorm / updateNorm : 1.0).ToScalar();
                update.mul_(trust);
            }

            var buffer = Buffer(_first, i);
            buffer.mul_(momentum).add_(update, alpha: rate);
            p.sub_(buffer);
        }
    }
}
