using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed class ModelRegistryTests : IDisposable
{
    private static readonly int[] Shape = [3, 4, 32, 32];
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-registry-").FullName;

    public void Dispose() => Directory.Delete(_models, recursive: true);

    [Fact]
    public void Start_GoodAndBadModels_BadOneReportedOthersServe()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "alpha");
        TinyModels.CopyInto(_models, TinyModels.Seed2, "beta");
        string broken = TinyModels.CopyInto(_models, TinyModels.Seed1, "broken");
        File.WriteAllText(Path.Combine(broken, EncoderManifest.FileName), "{ not json");
        using var registry = new ModelRegistry(_models, new EncoderSessionOptions());
        registry.Start();

        var status = registry.List();
        Assert.Equal(["alpha", "beta", "broken"], status.Select(s => s.Name));
        Assert.True(status[0].Ready && status[0].IsDefault && status[0].Provider == ExecutionProviders.Cpu);
        Assert.False(status[2].Ready);
        Assert.Contains("its manifest is missing or invalid", status[2].Error, StringComparison.Ordinal);
        using var lease = registry.Acquire("beta");
        Assert.Equal(EncoderManifest.Load(TinyModels.Seed2).EncoderSha256, lease.Model.Manifest.EncoderSha256);
        Assert.Throws<ModelNotFoundException>(() => registry.Acquire("broken"));
        Assert.Throws<ModelNotFoundException>(() => registry.Acquire("gamma"));
    }

    [Fact]
    public async Task Watch_ModelReplacedDuringTraffic_EveryRequestSucceedsAndTheNewVersionTakesOver()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "live");
        using var registry = new ModelRegistry(_models, new EncoderSessionOptions()) { Debounce = TimeSpan.FromMilliseconds(100) };
        var swapped = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        string newSha = EncoderManifest.Load(TinyModels.Seed2).EncoderSha256;
        registry.Changed += s => { if (s.EncoderSha256 == newSha) swapped.TrySetResult(); };
        registry.Start();
        var clips = new[] { TinyModels.RandomClips(1, Shape, 3) };

        using var stop = new CancellationTokenSource();
        var shas = new System.Collections.Concurrent.ConcurrentBag<string>();
        var traffic = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = registry.Acquire("live");
                var result = await lease.Model.Batcher.EmbedAsync(clips, Shape);
                Assert.Equal(64, result.Embeddings[0].Length);
                shas.Add(lease.Model.Manifest.EncoderSha256);
            }
        })).ToArray();

        await Task.Delay(200);
        // Replace the model the way a deploy would: new files into a staging folder, then a rename.
        string staging = Path.Combine(_models, ".live.new");
        TinyModels.CopyInto(_models, TinyModels.Seed2, ".live.new");
        string retired = Path.Combine(_models, ".live.old");
        Directory.Move(folder, retired);
        Directory.Move(staging, folder);
        await swapped.Task.WaitAsync(TimeSpan.FromSeconds(20));
        await Task.Delay(200);
        await stop.CancelAsync();
        await Task.WhenAll(traffic);

        Assert.Contains(EncoderManifest.Load(TinyModels.Seed1).EncoderSha256, shas);
        Assert.Contains(newSha, shas);
        using var after = registry.Acquire("live");
        Assert.Equal(newSha, after.Model.Manifest.EncoderSha256);
    }

    [Fact]
    public async Task Watch_HalfWrittenModel_OldVersionKeepsServingAndTheErrorIsReported()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        using var registry = new ModelRegistry(_models, new EncoderSessionOptions()) { Debounce = TimeSpan.FromMilliseconds(100) };
        var failed = new TaskCompletionSource<ModelStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        registry.Changed += s => { if (s.Error is not null) failed.TrySetResult(s); };
        registry.Start();

        // A new ONNX file lands but its manifest has not: the hashes disagree.
        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName), Path.Combine(folder, EncoderManifest.ModelFileName), overwrite: true);
        var status = await failed.Task.WaitAsync(TimeSpan.FromSeconds(20));

        Assert.Contains("SHA-256", status.Error, StringComparison.Ordinal);
        Assert.True(status.Ready);
        using var lease = registry.Acquire("m");
        Assert.Equal(EncoderManifest.Load(TinyModels.Seed1).EncoderSha256, lease.Model.Manifest.EncoderSha256);
    }

    [Fact]
    public async Task Watch_ProbesFolderChange_DoesNotReloadTheEncoder()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "p");
        using var registry = new ModelRegistry(_models, new EncoderSessionOptions()) { Debounce = TimeSpan.FromMilliseconds(50) };
        int loads = 0;
        registry.Changed += _ => Interlocked.Increment(ref loads);
        registry.Start();
        Assert.Equal(1, loads);

        Directory.CreateDirectory(Path.Combine(folder, "probes"));
        await File.WriteAllTextAsync(Path.Combine(folder, "probes", "actions.json"), "{}");
        await Task.Delay(600);
        Assert.Equal(1, loads);
    }

    [Theory]
    [InlineData("/m/a/encoder.onnx", "a")]
    [InlineData("/m/a", "a")]
    [InlineData("/m/a/probes/x.zip", null)]
    [InlineData("/m/.a.tmp-1/encoder.onnx", null)]
    [InlineData("/elsewhere/a", null)]
    public void ModelOf_PathsUnderTheModelsFolder(string path, string? expected)
    {
        Assert.Equal(expected, ModelRegistry.ModelOf("/m", path));
    }
}
