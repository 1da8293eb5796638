using CvrlServe.Training.Config;
using TorchSharp;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Trainers;

/// <summary>
/// The optimizer step with the reference's weight decay: on conv and linear kernels only (parameters
/// of two or more dimensions), never on batch norm or biases. SGD and LARS get coupled L2 (wd·w added to
/// the gradient, the same as ½·wd·‖w‖² in the loss); AdamW decays decoupled. LARS (layer-wise trust
/// ratio η‖w‖/‖g‖ on kernels, plain momentum elsewhere) is written here: TorchSharp has none.
/// </summary>
public sealed class ParameterUpdater : IDisposable
{
    private readonly OptimizerSection _settings;
    private readonly Parameter[] _parameters;
    private readonly bool[] _isKernel;
    private readonly OptimizerHelper? _optimizer;
    private readonly Tensor?[] _larsMomentum;

    public ParameterUpdater(IEnumerable<Parameter> parameters, OptimizerSection settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        _settings = settings;
        _parameters = parameters.Where(p => p.requires_grad).ToArray();
        _isKernel = _parameters.Select(p => p.dim() >= 2).ToArray();
        _larsMomentum = new Tensor?[_parameters.Length];
        _optimizer = settings.Kind switch
        {
            "sgd" => optim.SGD(_parameters, settings.LearningRate, settings.Momentum, nesterov: settings.Nesterov),
            "adamw" => optim.AdamW(_parameters, settings.LearningRate, weight_decay: 0),
            "lars" => null,
            _ => throw new ArgumentException($"Unknown optimizer '{settings.Kind}'.", nameof(settings)),
        };
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
        double wd = _settings.WeightDecay;
        if (_settings.Kind == "lars")
        {
            LarsStep(learningRate, wd);
            return;
        }

        for (int i = 0; i < _parameters.Length; i++)
        {
            if (!_isKernel[i] || wd == 0 || _parameters[i].grad is not { } grad)
            {
                continue;
            }

            if (_settings.Kind == "adamw")
            {
                _parameters[i].mul_(1 - learningRate * wd);
            }
            else
            {
                grad.add_(_parameters[i], alpha: wd);
            }
        }

        foreach (var group in _optimizer!.ParamGroups)
        {
            group.LearningRate = learningRate;
        }

        _optimizer.step();
    }

    public void Save(string path)
    {
        if (_optimizer is not null)
        {
            _optimizer.save_state_dict(path);
            return;
        }

        using var writer = new BinaryWriter(File.Create(path));
        writer.Write(_larsMomentum.Length);
        foreach (var buffer in _larsMomentum)
        {
            writer.Write(buffer is not null);
            buffer?.Save(writer);
        }
    }

    public void Load(string path)
    {
        if (_optimizer is not null)
        {
            _optimizer.load_state_dict(path);
            return;
        }

        using var reader = new BinaryReader(File.OpenRead(path));
        if (reader.ReadInt32() != _larsMomentum.Length)
        {
            throw new InvalidDataException($"'{path}' holds LARS state for a different model.");
        }

        for (int i = 0; i < _larsMomentum.Length; i++)
        {
            _larsMomentum[i]?.Dispose();
            _larsMomentum[i] = reader.ReadBoolean() ? TensorExtensionMethods.Load(reader).to(_parameters[i].device) : null;
        }
    }

    public void Dispose()
    {
        _optimizer?.Dispose();
        foreach (var buffer in _larsMomentum)
        {
            buffer?.Dispose();
        }
    }

    private void LarsStep(double learningRate, double wd)
    {
        for (int i = 0; i < _parameters.Length; i++)
        {
            var p = _parameters[i];
            if (p.grad is not { } grad)
            {
                continue;
            }

            using var scope = NewDisposeScope();
            var update = _isKernel[i] && wd > 0 ? grad + p * wd : grad.clone();
            if (_isKernel[i])
            {
                double weightNorm = p.norm().item<float>();
                double updateNorm = update.norm().item<float>();
                double trust = weightNorm > 0 && updateNorm > 0 ? _settings.LarsEta * weightNorm / updateNorm : 1.0;
                update.mul_(trust);
            }

            if (_larsMomentum[i] is null)
            {
                _larsMomentum[i] = zeros_like(p).DetachFromDisposeScope();
            }

            _larsMomentum[i]!.mul_(_settings.Momentum).add_(update, alpha: learningRate);
            p.sub_(_larsMomentum[i]!);
        }
    }
}
