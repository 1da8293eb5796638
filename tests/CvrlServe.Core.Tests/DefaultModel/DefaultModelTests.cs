using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.DefaultModel;

/// <summary>
/// The model the service serves out of the box (models/synthmotion-cvrl): it loads with the identity its
/// manifest states, its probes belong to it, and each probe classifies the committed SynthMotion test
/// samples (samples/synthmotion, never seen in training) better than chance by a margin that chance alone
/// would reach with probability below 1e-3 (binomial tail, computed from the sample count and classes).
/// </summary>
public sealed class DefaultModelTests
{
    private static readonly string Root = Repository.Root;
    private static readonly string ModelFolder = Path.Combine(Root, "models", "synthmotion-cvrl");

    [Fact]
    public async Task DefaultModel_LoadsWithTheIdItsManifestStates_AndItsProbesBelongToIt()
    {
        var manifest = EncoderManifest.Load(ModelFolder);
        await using var model = await EncoderModel.LoadAsync(ModelFolder, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, WarmUp = false });
        Assert.Equal(manifest.ModelId, model.Manifest.ModelId);
        Assert.Equal(EncoderManifest.Sha256Of(Path.Combine(ModelFolder, EncoderManifest.ModelFileName)), model.Manifest.EncoderSha256);
        var store = new ProbeStore(ModelFolder);
        Assert.Contains("scene-and-motion", store.List());
        foreach (string name in store.List())
        {
            var stored = await store.LoadAsync(name, model.Manifest);
            Assert.Equal(model.Manifest.ModelId, stored.Metadata.ModelId);
        }
    }

    [Theory]
    [InlineData("scene-and-motion")]
    public async Task DefaultProbe_ClassifiesTheCommittedSamples_BetterThanChance(string track)
    {
        await using var model = await EncoderModel.LoadAsync(ModelFolder, new EncoderSessionOptions { Provider = ProviderPreference.Cpu, WarmUp = false });
        var probe = (await new ProbeStore(ModelFolder).LoadAsync(track, model.Manifest)).Probe;
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cacheFolder: null);
        var samples = Directory.GetDirectories(Path.Combine(Root, "samples", "synthmotion", track))
            .SelectMany(folder => Directory.GetFiles(folder).Select(file => (File: file, Label: Path.GetFileName(folder))))
            .ToArray();
        Assert.Equal(probe.Classes.Order(StringComparer.Ordinal), samples.Select(s => s.Label).Distinct().Order(StringComparer.Ordinal));
        int correct = 0;
        foreach (var (file, label) in samples)
        {
            var probabilities = ProbeEvaluation.AverageViews((await features.TestAsync(model, file)).Select(probe.Predict).ToArray());
            correct += probe.Classes[Array.IndexOf(probabilities, probabilities.Max())] == label ? 1 : 0;
        }

        double chance = 1.0 / probe.Classes.Count;
        double tail = BinomialTail(samples.Length, correct, chance);
        Assert.True(tail < 1e-3, $"{correct} of {samples.Length} correct (chance {chance:P1}): P(at least that by chance) = {tail:G3}");
    }

    /// <summary>P(X ≥ k) for X ~ Binomial(n, p).</summary>
    internal static double BinomialTail(int n, int k, double p)
    {
        double total = 0;
        for (int i = k; i <= n; i++)
        {
            double logChoose = LogFactorial(n) - LogFactorial(i) - LogFactorial(n - i);
            total += Math.Exp(logChoose + i * Math.Log(p) + (n - i) * Math.Log(1 - p));
        }

        return total;
    }

    [Fact]
    public void BinomialTail_MatchesHandComputedValues()
    {
        Assert.Equal(1.0, BinomialTail(10, 0, 0.3), 12);
        Assert.Equal(0.5 * 0.5 * 0.5, BinomialTail(3, 3, 0.5), 12);
        Assert.Equal(0.5, BinomialTail(3, 2, 0.5), 12); // 3/8 + 1/8
    }

    private static double LogFactorial(int n)
    {
        double sum = 0;
        for (int i = 2; i <= n; i++)
        {
            sum += Math.Log(i);
        }

        return sum;
    }
}
