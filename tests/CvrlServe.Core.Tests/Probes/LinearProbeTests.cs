using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Tests.Inference;

namespace CvrlServe.Core.Tests.Probes;

public sealed class LinearProbeTests : IDisposable
{
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-probes-").FullName;

    public void Dispose() => Directory.Delete(_models, recursive: true);

    /// <summary>Clusters around three random directions in 64-d, noise well below their separation.</summary>
    internal static List<(float[] Features, string Label)> Clusters(int perClass, int seed, double noise = 0.15, int dimension = 64)
    {
        var random = new Random(42);
        var centres = Enumerable.Range(0, 3).Select(_ => Enumerable.Range(0, dimension).Select(_ => (float)Gaussian(random)).ToArray()).ToArray();
        random = new Random(seed);
        string[] names = ["clap", "jump", "wave"];
        var examples = new List<(float[], string)>();
        for (int c = 0; c < 3; c++)
        {
            for (int i = 0; i < perClass; i++)
            {
                examples.Add((centres[c].Select(v => (float)(v / Math.Sqrt(dimension) + noise * Gaussian(random) / Math.Sqrt(dimension) * 3)).ToArray(), names[c]));
            }
        }

        return examples;
    }

    private static double Gaussian(Random random) => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble());

    private static double Accuracy(LinearProbe probe, IEnumerable<(float[] Features, string Label)> test) =>
        test.Average(t => probe.Classes[Array.IndexOf(probe.Predict(t.Features), probe.Predict(t.Features).Max())] == t.Label ? 1.0 : 0.0);

    [Theory]
    [InlineData(ProbeTrainer.Lbfgs)]
    [InlineData(ProbeTrainer.Sdca)]
    public void Fit_WellSeparatedEmbeddings_AtLeast99PercentOnHeldOutData(ProbeTrainer trainer)
    {
        var (probe, l2, sweep) = ProbeTraining.Fit(Clusters(40, seed: 1), new ProbeTrainingOptions(trainer));
        Assert.Equal(["clap", "jump", "wave"], probe.Classes);
        Assert.Equal(5, sweep.Count);
        Assert.Contains(l2, new ProbeTrainingOptions().Candidates);
        Assert.True(Accuracy(probe, Clusters(30, seed: 2)) >= 0.99);
        var p = probe.Predict(Clusters(1, seed: 3)[0].Features);
        Assert.Equal(1f, p.Sum(), 3);
    }

    [Fact]
    public void SaveAndLoad_SamePredictions_BoundToTheEncoder()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1);
        var (probe, l2, sweep) = ProbeTraining.Fit(Clusters(20, seed: 1), new ProbeTrainingOptions());
        string model = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        ProbeStore.Save(model, Metadata("actions", manifest, probe, l2, sweep), probe);

        var loaded = ProbeStore.Load(model, "actions", manifest);
        var test = Clusters(10, seed: 5);
        Assert.All(test, t => Assert.Equal(probe.Predict(t.Features), loaded.Probe.Predict(t.Features)));
        Assert.Equal(["actions"], ProbeStore.List(model));
        Assert.True(File.Exists(Path.Combine(model, "probes", "actions.json")));

        var other = EncoderManifest.Load(TinyModels.Seed2);
        var error = Assert.Throws<ProbeMismatchException>(() => ProbeStore.Load(model, "actions", other));
        Assert.Contains("Retrain", error.Message, StringComparison.Ordinal);
        Assert.Throws<ProbeMismatchException>(() => ProbeStore.Load(model, "actions", manifest with { Output = manifest.Output with { Dimension = 128 } }));
    }

    [Fact]
    public void Save_DiesMidWrite_PreviousProbeIntactAndLeftoversCleanedNextTime()
    {
        var manifest = EncoderManifest.Load(TinyModels.Seed1);
        string model = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        var (first, l2, sweep) = ProbeTraining.Fit(Clusters(20, seed: 1), new ProbeTrainingOptions());
        ProbeStore.Save(model, Metadata("p", manifest, first, l2, sweep), first);
        var (second, _, _) = ProbeTraining.Fit(Clusters(20, seed: 9, noise: 0.6), new ProbeTrainingOptions(L2Candidates: [1.0]));

        ProbeStore.AfterTemporaryWrite = () => throw new IOException("simulated crash");
        try
        {
            Assert.Throws<IOException>(() => ProbeStore.Save(model, Metadata("p", manifest, second, 1.0, []), second));
        }
        finally
        {
            ProbeStore.AfterTemporaryWrite = null;
        }

        var survivor = ProbeStore.Load(model, "p", manifest);
        var x = Clusters(1, seed: 11)[0].Features;
        Assert.Equal(first.Predict(x), survivor.Probe.Predict(x));
        Assert.Equal(l2, survivor.Metadata.L2);
        Assert.NotEmpty(Directory.GetFiles(Path.Combine(model, "probes"), "*.tmp"));

        ProbeStore.Save(model, Metadata("p", manifest, second, 1.0, []), second);
        Assert.Empty(Directory.GetFiles(Path.Combine(model, "probes"), "*.tmp"));
    }

    [Fact]
    public async Task Predict_FromManyThreads_SameAsSequential()
    {
        var (probe, _, _) = ProbeTraining.Fit(Clusters(20, seed: 1), new ProbeTrainingOptions(L2Candidates: [0.01]));
        var inputs = Clusters(30, seed: 4).Select(t => t.Features).ToArray();
        var sequential = inputs.Select(probe.Predict).ToArray();
        var parallel = await Task.WhenAll(inputs.Select(x => Task.Run(() => probe.Predict(x))));
        Assert.Equal(sequential, parallel);
    }

    [Fact]
    public void Evaluate_HandCountedConfusionPrecisionRecallAndLogLoss()
    {
        string[] classes = ["a", "b"];
        var metrics = ProbeEvaluation.Evaluate(classes,
        [
            ("a", [0.9f, 0.1f]),
            ("a", [0.4f, 0.6f]),
            ("b", [0.2f, 0.8f]),
        ]);
        Assert.Equal(2.0 / 3, metrics.Top1, 6);
        Assert.Equal(1.0, metrics.Top5);
        Assert.Equal([[1, 1], [0, 1]], metrics.Confusion);
        Assert.Equal([1.0, 0.5], metrics.Precision);
        Assert.Equal([0.5, 1.0], metrics.Recall);
        Assert.Equal(-(Math.Log(0.9) + Math.Log(0.4) + Math.Log(0.8)) / 3, metrics.LogLoss, 5);
        Assert.Equal([0.5f, 0.5f], ProbeEvaluation.AverageViews([[1f, 0f], [0f, 1f]]));
    }

    internal static ProbeMetadata Metadata(string name, EncoderManifest manifest, LinearProbe probe, double l2, IReadOnlyList<SweepResult> sweep) => new()
    {
        Name = name,
        Encoder = manifest.Name,
        EncoderSha256 = manifest.EncoderSha256,
        EmbeddingSize = manifest.Output.Dimension,
        Classes = probe.Classes,
        Trainer = ProbeTrainer.Lbfgs,
        L2 = l2,
        Sweep = sweep,
    };
}
