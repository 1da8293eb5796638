using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Tests.Inference;

namespace CvrlServe.Core.Tests.Probes;

public sealed class ProbeTrainingTests : IDisposable
{
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-probetraining-").FullName;

    public void Dispose() => Directory.Delete(_models, recursive: true);

    [Fact]
    public void Split_ClipsOfManyVideos_NoVideoOnBothSides_EveryClassKeepsAVideo()
    {
        // 3 classes with 1, 2 and 10 videos of 4 clips each.
        var examples = new List<(float[] Features, string Label, string Group)>();
        foreach (var (label, videos) in new[] { ("a", 1), ("b", 2), ("c", 10) })
        {
            for (int v = 0; v < videos; v++)
            {
                for (int k = 0; k < 4; k++)
                {
                    examples.Add(([v, k], label, $"{label}/v{v}.mp4"));
                }
            }
        }

        for (int seed = 0; seed < 5; seed++)
        {
            var (train, validation) = ProbeTraining.Split(examples, 0.2, seed);
            Assert.Equal(examples.Count, train.Count + validation.Count);
            Assert.Empty(train.Select(e => e.Group).Intersect(validation.Select(e => e.Group)));
            Assert.Equal(["a", "b", "c"], train.Select(e => e.Label).Distinct().Order());
            // round(0.2 × videos) held out per class, never a class's last: 0 of a's 1, 0 of b's 2 (round(0.4)), 2 of c's 10.
            Assert.Equal(8, validation.Count);
            Assert.All(validation, e => Assert.Equal("c", e.Label));
        }
    }

    [Fact]
    public void Split_GroupWithTwoLabels_Refused() =>
        Assert.Throws<ArgumentException>(() => ProbeTraining.Split([([1f], "a", "v"), ([2f], "b", "v")], 0.5, 0));

    [Theory]
    [InlineData(ProbeTrainer.Lbfgs)]
    [InlineData(ProbeTrainer.Sdca)]
    public void Fit_DefaultCandidates_IncludeZero_AndZeroTrains(ProbeTrainer trainer)
    {
        Assert.Equal(0, new ProbeTrainingOptions().Candidates[0]);
        var (probe, l2, sweep) = ProbeTraining.Fit(LinearProbeTests.Grouped(LinearProbeTests.Clusters(20, seed: 1)), new ProbeTrainingOptions(trainer, L2Candidates: [0]));
        Assert.Equal(0, l2);
        Assert.Single(sweep);
        Assert.True(sweep[0].Accuracy > 0.9, $"L2 = 0 scored {sweep[0].Accuracy}");
        Assert.All(probe.Predict(LinearProbeTests.Clusters(1, seed: 3)[0].Features), p => Assert.True(float.IsFinite(p)));
    }

    /// <summary>
    /// 64-d features whose first dimension is a large offset shared by all (100) and whose second carries the
    /// class: +0.01 for "a", −0.01 for "b" (noise 0.002); the rest is noise of 0.002. After L2 normalization
    /// the class sits in ±1e-4 of the second dimension. Training is 70% "a".
    /// </summary>
    private static List<(float[] Features, string Label)> Offset(int a, int b, int seed)
    {
        var random = new Random(seed);
        float Noise() => (float)(0.002 * (random.NextDouble() * 2 - 1) * Math.Sqrt(3));
        var examples = new List<(float[], string)>();
        foreach (var (label, count, sign) in new[] { ("a", a, 1f), ("b", b, -1f) })
        {
            for (int i = 0; i < count; i++)
            {
                var x = Enumerable.Range(0, 64).Select(_ => Noise()).ToArray();
                x[0] = 100;
                x[1] = sign * 0.01f + Noise();
                examples.Add((x, label));
            }
        }

        return examples;
    }

    private static double Accuracy(LinearProbe probe, IEnumerable<(float[] Features, string Label)> test) =>
        test.Average(t => probe.Classes[Array.IndexOf(probe.Predict(t.Features), probe.Predict(t.Features).Max())] == t.Label ? 1.0 : 0.0);

    [Fact]
    public async Task Train_ClassInADimensionOfTinyScale_OnlyTheStandardizedProbeSeparates_AndItSurvivesSaveAndLoad()
    {
        // Unstandardized, a weight w on the class dimension moves a logit by w × 1e-4; the L2 penalty
        // (1e-2 × w²/2) against a data-loss gradient of at most 200 × 1e-4 keeps |w| ≤ 2, a logit change
        // ≤ 2e-4, while the class prior (70/30) is worth log(7/3) ≈ 0.85 in the unpenalized bias: every
        // example is called "a", 50% on a balanced test. Standardized, the class dimension has unit
        // variance (a at +0.65σ, b at −1.5σ) and the same L2 barely constrains it: all correct.
        var train = Offset(140, 60, seed: 1);
        var test = Offset(100, 100, seed: 2);
        var plain = LinearProbe.Train(train, ProbeTrainer.Lbfgs, 1e-2, standardize: false);
        var standardized = LinearProbe.Train(train, ProbeTrainer.Lbfgs, 1e-2);
        Assert.Equal(0.5, Accuracy(plain, test), 3);
        Assert.Equal(1.0, Accuracy(standardized, test), 3);

        // The mean and variance are part of the saved model: a loaded probe predicts identically.
        var manifest = EncoderManifest.Load(TinyModels.Seed1);
        var store = new ProbeStore(TinyModels.CopyInto(_models, TinyModels.Seed1, "m"));
        await store.SaveAsync(LinearProbeTests.Metadata("offset", manifest, standardized, 1e-2, []), standardized);
        var loaded = (await new ProbeStore(store.ModelFolder).LoadAsync("offset", manifest)).Probe;
        Assert.All(test, t => Assert.Equal(standardized.Predict(t.Features), loaded.Predict(t.Features)));
        Assert.Equal(1.0, Accuracy(loaded, test), 3);
    }
}
