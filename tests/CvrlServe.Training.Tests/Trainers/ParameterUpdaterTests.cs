using CvrlServe.Training.Config;
using CvrlServe.Training.Trainers;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Trainers;

public sealed class ParameterUpdaterTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-updater-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Theory]
    [InlineData("sgd", 0.1)]
    [InlineData("lars", 1.0)]
    [InlineData("adamw", 0.01)]
    public void Step_EachOptimizer_FitsASmallRegression(string kind, double learningRate)
    {
        manual_seed(1);
        using var model = nn.Sequential(("0", nn.Linear(8, 16)), ("1", nn.ReLU()), ("2", nn.Linear(16, 1)));
        using var updater = new ParameterUpdater(model.parameters(), new OptimizerSection(kind, learningRate, WeightDecay: 1e-4));
        using var x = randn([64, 8]);
        using var y = x.sum(1, keepdim: true);
        double first = 0, last = 0;
        for (int step = 0; step < 60; step++)
        {
            using var scope = NewDisposeScope();
            var loss = (model.forward(x) - y).square().mean();
            updater.ZeroGrad();
            loss.backward();
            updater.Step(learningRate);
            (first, last) = step == 0 ? (loss.item<float>(), 0) : (first, loss.item<float>());
        }

        Assert.True(last < 0.5 * first, $"{kind}: loss {first} -> {last}");
    }

    /// <summary>
    /// The hand-written SGD and AdamW against TorchSharp's own (the independent reference), with the
    /// reference's weight decay applied around them the way this class defines it: coupled for SGD, decoupled
    /// for AdamW, kernels only. Eight steps with changing rates on a model with kernels and biases.
    /// </summary>
    [Theory]
    [InlineData("sgd", false)]
    [InlineData("sgd", true)]
    [InlineData("adamw", false)]
    public void Step_MatchesTorchSharpsOptimizer(string kind, bool nesterov)
    {
        var settings = new OptimizerSection(kind, 0.05, Momentum: 0.9, Nesterov: nesterov, WeightDecay: 0.01);
        float[] Run(bool reference)
        {
            manual_seed(3);
            using var model = nn.Sequential(("0", nn.Linear(6, 5)), ("1", nn.Tanh()), ("2", nn.Linear(5, 2)));
            var parameters = model.parameters().ToArray();
            using var ours = new ParameterUpdater(parameters, settings);
            using var theirs = kind == "sgd"
                ? optim.SGD(parameters, 0.05, 0.9, nesterov: nesterov)
                : (OptimizerHelper)optim.AdamW(parameters, 0.05, weight_decay: 0);
            using var x = randn([32, 6]);
            using var y = randn([32, 2]);
            for (int step = 0; step < 8; step++)
            {
                double rate = 0.05 * (step + 1) / 8;
                using var scope = NewDisposeScope();
                var loss = (model.forward(x) - y).square().mean();
                foreach (var p in parameters)
                {
                    p.grad?.zero_();
                }

                loss.backward();
                if (!reference)
                {
                    ours.Step(rate);
                    continue;
                }

                using (no_grad())
                {
                    foreach (var p in parameters.Where(p => p.dim() >= 2))
                    {
                        if (kind == "sgd")
                        {
                            p.grad!.add_(p, alpha: 0.01);
                        }
                        else
                        {
                            p.mul_(1 - rate * 0.01);
                        }
                    }
                }

                foreach (var group in theirs.ParamGroups)
                {
                    group.LearningRate = rate;
                }

                theirs.step();
            }

            return parameters.SelectMany(p => p.data<float>().ToArray()).ToArray();
        }

        var expected = Run(reference: true);
        var actual = Run(reference: false);
        Assert.Equal(expected.Length, actual.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.True(Math.Abs(expected[i] - actual[i]) <= 1e-5 + 1e-4 * Math.Abs(expected[i]), $"{kind}: parameter value {i}: {actual[i]} vs TorchSharp {expected[i]}");
        }
    }

    [Theory]
    [InlineData("sgd")]
    [InlineData("adamw")]
    [InlineData("lars")]
    public void SaveLoad_ContinuesIdentically(string kind)
    {
        (float, float) Run(bool reload)
        {
            manual_seed(2);
            using var model = nn.Linear(4, 1);
            var settings = new OptimizerSection(kind, 0.1, WeightDecay: 1e-3);
            var updater = new ParameterUpdater(model.parameters(), settings);
            using var x = randn([16, 4]);
            using var y = x.sum(1, keepdim: true);
            void Step()
            {
                using var scope = NewDisposeScope();
                var loss = (model.forward(x) - y).square().mean();
                updater.ZeroGrad();
                loss.backward();
                updater.Step(0.1);
            }

            Step();
            Step();
            if (reload)
            {
                string path = Path.Combine(_folder, $"{kind}.bin");
                updater.Save(path);
                updater.Dispose();
                updater = new ParameterUpdater(model.parameters(), settings);
                updater.Load(path);
            }

            Step();
            updater.Dispose();
            return (model.weight![0, 0].item<float>(), model.bias![0].item<float>());
        }

        Assert.Equal(Run(reload: false), Run(reload: true));
    }

    [Fact]
    public void Load_StateOfAnotherOptimizerOrFormat_IsRefusedClearly()
    {
        using var model = nn.Linear(4, 1);
        string path = Path.Combine(_folder, "sgd.bin");
        using (var sgd = new ParameterUpdater(model.parameters(), new OptimizerSection("sgd", 0.1)))
        {
            sgd.Save(path);
        }

        using var adamw = new ParameterUpdater(model.parameters(), new OptimizerSection("adamw", 0.1));
        Assert.Contains("different model or optimizer", Assert.Throws<InvalidDataException>(() => adamw.Load(path)).Message);
        File.WriteAllBytes(path, [1, 2, 3]);
        Assert.Contains("not optimizer state", Assert.Throws<InvalidDataException>(() => adamw.Load(path)).Message);
    }
}
