using CvrlServe.Training.Config;
using CvrlServe.Training.Trainers;
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

    [Fact]
    public void SaveLoad_LarsMomentum_ContinuesIdentically()
    {
        (float, float) Run(bool reload)
        {
            manual_seed(2);
            using var model = nn.Linear(4, 1);
            var settings = new OptimizerSection("lars", 1.0);
            var updater = new ParameterUpdater(model.parameters(), settings);
            using var x = randn([16, 4]);
            using var y = x.sum(1, keepdim: true);
            void Step()
            {
                using var scope = NewDisposeScope();
                var loss = (model.forward(x) - y).square().mean();
                updater.ZeroGrad();
                loss.backward();
                updater.Step(1.0);
            }

            Step();
            if (reload)
            {
                string path = Path.Combine(_folder, "lars.bin");
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
}
