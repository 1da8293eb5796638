using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Training.Config;
using CvrlServe.Training.Tests.Trainers;

namespace CvrlServe.Training.Tests.Config;

public class ExperimentConfigTests
{
    private static string Paper => Path.Combine(AppContext.BaseDirectory, "experiments", "cvrl-k600-paper.json");

    [Fact]
    public void ScaledLearningRate_LinearInTheBatch_PaperConfigKeepsItsRate()
    {
        var paper = ExperimentConfig.Load(Paper);
        Assert.Equal(0.32, paper.ScaledLearningRate, 12);
        Assert.Equal(0.08, ExperimentConfig.Load(Paper, ["batchSize=256"]).ScaledLearningRate, 12);
        Assert.Equal(0.1, ExperimentConfig.Load(PretrainerTests.TinyConfig).ScaledLearningRate, 12);
        Assert.Equal(0.2, ExperimentConfig.Load(PretrainerTests.TinyConfig, ["batchSize=16"]).ScaledLearningRate, 12);
        Assert.Equal(0.1 * 8 / 256, ExperimentConfig.Load(PretrainerTests.TinyConfig, ["optimizer.referenceBatch=256"]).ScaledLearningRate, 12);
    }

    [Fact]
    public void Resolve_Epochs_CeilOfVideosOverBatchStepsEach()
    {
        var config = ExperimentConfig.Load(PretrainerTests.TinyConfig,
            ["steps=null", "epochs=2.5", "optimizer.warmupSteps=null", "optimizer.warmupEpochs=1", "batchSize=8"]);
        Assert.Throws<InvalidOperationException>(() => config.TotalSteps);

        // 20 videos at batch 8: 3 steps an epoch; 2.5 epochs is 7.5 steps, rounded up.
        var resolved = config.Resolve(20);
        Assert.Equal((8, 3), (resolved.TotalSteps, resolved.TotalWarmupSteps));
        Assert.Null(resolved.Epochs);
        Assert.Null(resolved.Optimizer.WarmupEpochs);
        Assert.Contains("8 steps, 2.5 epochs of 3 steps", config.DescribeSchedule(resolved, 20), StringComparison.Ordinal);

        // A config in steps resolves to itself.
        var steps = ExperimentConfig.Load(PretrainerTests.TinyConfig);
        Assert.Equal(steps.ToJson(), steps.Resolve(20).ToJson());
    }

    [Fact]
    public void Load_StepsAndEpochsTogether_Refused()
    {
        var both = Assert.Throws<ConfigException>(() => ExperimentConfig.Load(PretrainerTests.TinyConfig, ["epochs=3", "optimizer.warmupEpochs=1"]));
        Assert.Contains(both.Problems, p => p.Contains("set steps or epochs, not both", StringComparison.Ordinal));
        Assert.Contains(both.Problems, p => p.Contains("optimizer.warmupSteps or optimizer.warmupEpochs", StringComparison.Ordinal));
        var neither = Assert.Throws<ConfigException>(() => ExperimentConfig.Load(PretrainerTests.TinyConfig, ["steps=null"]));
        Assert.Contains(neither.Problems, p => p == "set steps or epochs");
        var tooLong = ExperimentConfig.Load(PretrainerTests.TinyConfig, ["steps=null", "epochs=1", "optimizer.warmupSteps=null", "optimizer.warmupEpochs=2"]);
        Assert.Throws<ConfigException>(() => tooLong.Resolve(16));
    }

    [Fact]
    public void UpgradeSaved_ConfigWrittenBeforeTheKeys_MeansWhatItsCodeDid()
    {
        // A cpu-tiny config as checkpoints saved it before model.headHiddenSize and optimizer.referenceBatch.
        var config = JsonNode.Parse(ExperimentConfig.Load(PretrainerTests.TinyConfig).ToJson())!.AsObject();
        config["model"]!.AsObject().Remove("headHiddenSize");
        config["optimizer"]!.AsObject().Remove("referenceBatch");
        config["batchSize"] = 12;
        ExperimentConfig.UpgradeSaved(config);
        var saved = config.Deserialize<ExperimentConfig>(ExperimentConfig.Json)!;
        Assert.Equal(128, saved.Model.HeadHiddenSize); // r3d18 at width 0.25 embeds in 128
        Assert.Equal(12, saved.Optimizer.ReferenceBatch);
        Assert.Equal(0.1, saved.ScaledLearningRate, 12);
    }
}
