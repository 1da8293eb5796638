using System.Collections.Concurrent;
using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed partial class ModelRegistryTests : IDisposable
{
    private static readonly int[] Shape = [3, 4, 32, 32];
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-registry-").FullName;

    public void Dispose() => Directory.Delete(_models, recursive: true);

    private static EncoderSessionOptions Cpu() => new() { Provider = ProviderPreference.Cpu };

    [Fact]
    public async Task StartAsync_GoodAndBadModels_BadOneReportedOthersServe()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "alpha");
        TinyModels.CopyInto(_models, TinyModels.Seed2, "beta");
        string broken = TinyModels.CopyInto(_models, TinyModels.Seed1, "broken");
        File.WriteAllText(Path.Combine(broken, EncoderManifest.FileName), "{ not json");
        await using var registry = new ModelRegistry(_models, Cpu());
        await registry.StartAsync();

        var status = registry.List();
        Assert.Equal(["alpha", "beta", "broken"], status.Select(s => s.Name));
        var seed1 = EncoderManifest.Load(TinyModels.Seed1);
        Assert.Equal((true, true, ExecutionProviders.Cpu), (status[0].Ready, status[0].IsDefault, status[0].Provider));
        Assert.Equal((seed1.ModelId, seed1.EncoderSha256), (status[0].ModelId, status[0].EncoderSha256));
        Assert.False(status[2].Ready);
        Assert.Contains("its manifest is missing or invalid", status[2].Error, StringComparison.Ordinal);
        using var lease = registry.Acquire("beta");
        Assert.Equal(EncoderManifest.Load(TinyModels.Seed2).EncoderSha256, lease.Model.Manifest.EncoderSha256);
        Assert.Equal(ErrorKind.NotReady, Assert.Throws<ModelNotReadyException>(() => registry.Acquire("broken")).Kind);
        Assert.Equal(ErrorKind.NotFound, Assert.Throws<ModelNotFoundException>(() => registry.Acquire("gamma")).Kind);
    }

    [Fact]
    public async Task Acquire_ModelStillLoading_NotReadyRatherThanNotFound()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "a");
        TinyModels.CopyInto(_models, TinyModels.Seed2, "b");
        await using var registry = new ModelRegistry(_models, Cpu());
        var whileLoading = new TaskCompletionSource<Exception?>(TaskCreationOptions.RunContinuationsAsynchronously);
        // Models load in name order: when "a" is reported, "b" is known and not loaded yet.
        registry.Changed += s =>
        {
            if (s.Name == "a")
            {
                whileLoading.TrySetResult(Record.Exception(() => registry.Acquire("b")));
            }
        };

        await registry.StartAsync();

        var error = Assert.IsType<ModelNotReadyException>(await whileLoading.Task.WaitAsync(Patience));
        Assert.Contains("loading", error.Message, StringComparison.Ordinal);
        using var lease = registry.Acquire("b");
    }

    [Theory]
    [InlineData("/etc")]
    [InlineData("..")]
    [InlineData("../models")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("mödel")]
    public async Task ReloadAsync_NameThatIsNotAModelName_RefusedBeforeAnyPathIsTouched(string name)
    {
        await using var registry = new ModelRegistry(_models, Cpu());
        await registry.StartAsync();
        int changes = 0;
        registry.Changed += _ => Interlocked.Increment(ref changes);

        await Assert.ThrowsAsync<InvalidRequestException>(() => registry.ReloadAsync(name));
        Assert.Equal(ErrorKind.InvalidArgument, Assert.Throws<InvalidRequestException>(() => registry.Acquire(name)).Kind);
        Assert.Empty(registry.List());
        Assert.Equal(0, changes);
    }

    [Fact]
    public void IsValidName_LengthAndCharacters()
    {
        Assert.True(ModelRegistry.IsValidName(new string('a', 100)));
        Assert.False(ModelRegistry.IsValidName(new string('a', 101)));
        Assert.True(ModelRegistry.IsValidName("r3d-18_v1.2"));
        Assert.False(ModelRegistry.IsValidName(null));
    }

    [Fact]
    public async Task DisposeAsync_ReloadInFlight_WaitsForItAndRetiresEveryModel()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        var registry = new ModelRegistry(_models, Cpu());
        await registry.StartAsync();
        EncoderModel first;
        using (var lease = registry.Acquire("m"))
        {
            first = lease.Model;
        }

        var reload = registry.ReloadAsync("m");
        await registry.DisposeAsync().AsTask().WaitAsync(Patience);

        // The load itself is over once DisposeAsync returns (it holds the load semaphore); the reload's task
        // completes a continuation later, so it is given a moment rather than checked in the same instant.
        var error = await Record.ExceptionAsync(() => reload.WaitAsync(TimeSpan.FromSeconds(5)));
        Assert.False(error is TimeoutException, "the reload was still running after DisposeAsync returned");
        Assert.True(error is null or ModelNotReadyException or OperationCanceledException, $"{error}");
        Assert.True(first.Disposed.IsCompletedSuccessfully);
        Assert.Throws<ModelNotReadyException>(() => registry.Acquire("m"));
        await Assert.ThrowsAsync<ModelNotReadyException>(() => registry.ReloadAsync("m"));
    }

    [Fact]
    public async Task Watch_ModelReplacedDuringTraffic_EveryRequestSucceedsAndTheNewVersionTakesOver()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "live");
        await using var registry = new ModelRegistry(_models, Cpu()) { Debounce = TimeSpan.FromMilliseconds(100) };
        string oldSha = EncoderManifest.Load(TinyModels.Seed1).EncoderSha256;
        string newSha = EncoderManifest.Load(TinyModels.Seed2).EncoderSha256;
        await registry.StartAsync();
        var clips = new[] { TinyModels.RandomClips(1, Shape, 3) };

        using var stop = new CancellationTokenSource();
        var shas = new ConcurrentQueue<string>();
        var servedOld = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var servedNew = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var traffic = Enumerable.Range(0, 3).Select(_ => Task.Run(async () =>
        {
            while (!stop.IsCancellationRequested)
            {
                using var lease = registry.Acquire("live");
                var result = await lease.Model.Batcher.EmbedAsync(clips, Shape);
                Assert.Equal(64, result.Embeddings[0].Length);
                string sha = lease.Model.Manifest.EncoderSha256;
                shas.Enqueue(sha);
                (sha == newSha ? servedNew : servedOld).TrySetResult();
            }
        })).ToArray();

        await servedOld.Task.WaitAsync(Patience);
        // Replace the model the way a deploy would: new files into a staging folder, then a rename.
        string staging = Path.Combine(_models, ".live.new");
        TinyModels.CopyInto(_models, TinyModels.Seed2, ".live.new");
        Directory.Move(folder, Path.Combine(_models, ".live.old"));
        Directory.Move(staging, folder);
        await servedNew.Task.WaitAsync(Patience);
        await stop.CancelAsync();
        await Task.WhenAll(traffic).WaitAsync(Patience);

        Assert.Contains(oldSha, shas);
        using var after = registry.Acquire("live");
        Assert.Equal(newSha, after.Model.Manifest.EncoderSha256);
    }

    [Fact]
    public async Task Watch_HalfWrittenModel_OldVersionKeepsServingAndTheErrorIsReported()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        await using var registry = new ModelRegistry(_models, Cpu()) { Debounce = TimeSpan.FromMilliseconds(100) };
        var failed = new TaskCompletionSource<ModelStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        registry.Changed += s => { if (s.Error is not null) failed.TrySetResult(s); };
        await registry.StartAsync();

        // A new ONNX file lands but its manifest has not: the hashes disagree.
        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName), Path.Combine(folder, EncoderManifest.ModelFileName), overwrite: true);
        var status = await failed.Task.WaitAsync(Patience);

        Assert.Contains("SHA-256", status.Error, StringComparison.Ordinal);
        Assert.True(status.Ready);
        using var lease = registry.Acquire("m");
        Assert.Equal(EncoderManifest.Load(TinyModels.Seed1).EncoderSha256, lease.Model.Manifest.EncoderSha256);
    }

    [Fact]
    public async Task Watch_ProbesFolderChange_DoesNotReloadTheEncoder()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "p");
        string marker = TinyModels.CopyInto(_models, TinyModels.Seed2, "q");
        await using var registry = new ModelRegistry(_models, Cpu()) { Debounce = TimeSpan.FromMilliseconds(50) };
        int loads = 0;
        var markerReloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        registry.Changed += s =>
        {
            if (s.Name == "p")
            {
                Interlocked.Increment(ref loads);
            }
            else
            {
                markerReloaded.TrySetResult();
            }
        };
        await registry.StartAsync();
        markerReloaded = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        Assert.Equal(1, loads);

        Directory.CreateDirectory(Path.Combine(folder, "probes"));
        await File.WriteAllTextAsync(Path.Combine(folder, "probes", "actions.json"), "{}");
        // The watcher reports changes in order: once the later change to another model is through, the probe change was seen.
        await File.AppendAllTextAsync(Path.Combine(marker, EncoderManifest.FileName), "\n");
        await markerReloaded.Task.WaitAsync(Patience);
        Assert.Equal(1, loads);
    }

    [Fact]
    public async Task Watch_ReloadThatThrows_ObservedAndReportedInTheStatus()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        var registry = new ModelRegistry(_models, Cpu()) { Debounce = TimeSpan.FromMilliseconds(50) };
        await registry.StartAsync();
        var thrown = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        registry.Changed += _ =>
        {
            thrown.TrySetResult();
            throw new InvalidOperationException("a listener failed");
        };

        await File.AppendAllTextAsync(Path.Combine(folder, EncoderManifest.FileName), "\n");
        await thrown.Task.WaitAsync(Patience);
        await registry.DisposeAsync().AsTask().WaitAsync(Patience); // waits for the watcher's reload task

        // Reported by kind, without the exception's own text (statuses are shown to clients).
        string? error = registry.List().Single().Error;
        Assert.Contains("could not be reloaded (InvalidOperationException)", error, StringComparison.Ordinal);
        Assert.DoesNotContain("a listener failed", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/m/a/encoder.onnx", "a")]
    [InlineData("/m/a", "a")]
    [InlineData("/m/a/probes/x.zip", null)]
    [InlineData("/m/.a.tmp-1/encoder.onnx", null)]
    [InlineData("/m/a b/encoder.onnx", null)]
    [InlineData("/elsewhere/a", null)]
    public void ModelOf_PathsUnderTheModelsFolder(string path, string? expected)
    {
        Assert.Equal(expected, ModelRegistry.ModelOf("/m", path));
    }
}
