using System.Collections.Concurrent;
using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

/// <summary>Polling: what another node writes to a network volume reaches the registry with no file-system event at all.</summary>
public sealed partial class ModelRegistryTests
{
    private ModelRegistry Polling(TimeSpan? interval = null) =>
        new(_models, Cpu()) { ChangeDetection = ChangeDetection.Poll, PollInterval = interval ?? TimeSpan.FromHours(1) };

    [Fact]
    public async Task PollOnceAsync_NewChangedAndRemovedFolders_LoadedReloadedAndForgotten()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "a");
        string gone = TinyModels.CopyInto(_models, TinyModels.Seed1, "gone");
        await using var registry = Polling();
        await registry.StartAsync();

        TinyModels.CopyInto(_models, TinyModels.Seed2, "b");
        TinyModels.CopyInto(_models, TinyModels.Seed2, "a");
        Directory.Delete(gone, recursive: true);
        int changed = await registry.PollOnceAsync();

        Assert.Equal(3, changed);
        var status = registry.List();
        Assert.Equal(["a", "b"], status.Select(s => s.Name));
        string seed2 = EncoderManifest.Load(TinyModels.Seed2).ModelId;
        Assert.All(status, s => Assert.Equal((true, seed2, (string?)null), (s.Ready, s.ModelId, s.Error)));
        Assert.Throws<ModelNotFoundException>(() => registry.Acquire("gone"));
    }

    [Fact]
    public async Task PollOnceAsync_NothingChanged_NothingReloaded()
    {
        TinyModels.CopyInto(_models, TinyModels.Seed1, "a");
        string broken = TinyModels.CopyInto(_models, TinyModels.Seed1, "broken");
        File.WriteAllText(Path.Combine(broken, EncoderManifest.FileName), "{ not json");
        await using var registry = Polling();
        await registry.StartAsync();
        int loads = 0;
        registry.Changed += _ => Interlocked.Increment(ref loads);

        Assert.Equal(0, await registry.PollOnceAsync());
        // A folder whose probes change is the same model; a broken one is not retried until it changes.
        Directory.CreateDirectory(Path.Combine(_models, "a", "probes"));
        await File.WriteAllTextAsync(Path.Combine(_models, "a", "probes", "p.json"), "{}");
        Assert.Equal(0, await registry.PollOnceAsync());
        Assert.Equal(0, loads);
    }

    [Fact]
    public async Task PollOnceAsync_ReplacedWithEqualSizesAndTimes_TheManifestTellsThemApart()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        await using var registry = Polling();
        await registry.StartAsync();
        var times = Directory.GetFiles(folder).ToDictionary(f => Path.GetFileName(f), File.GetLastWriteTimeUtc);

        // As cp -p or tar would: the other export's files, the old files' times.
        TinyModels.CopyInto(_models, TinyModels.Seed2, "m");
        foreach (var (name, time) in times)
        {
            File.SetLastWriteTimeUtc(Path.Combine(folder, name), time);
        }

        Assert.Equal(1, await registry.PollOnceAsync());
        using var lease = registry.Acquire("m");
        Assert.Equal(EncoderManifest.Load(TinyModels.Seed2).ModelId, lease.Model.Manifest.ModelId);
    }

    [Fact]
    public async Task PollOnceAsync_HalfCopiedThenFinished_OldVersionServesUntilTheFinishedCopyLoads()
    {
        string folder = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");
        await using var registry = Polling();
        await registry.StartAsync();
        string seed1 = EncoderManifest.Load(TinyModels.Seed1).ModelId;

        // The new ONNX file has landed, its manifest not yet: the load's hash check fails, the old one serves.
        string onnx = Path.Combine(folder, EncoderManifest.ModelFileName);
        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName), onnx, overwrite: true);
        File.SetLastWriteTimeUtc(onnx, DateTime.UtcNow); // File.Copy keeps the source's time; a plain copy would not
        Assert.Equal(1, await registry.PollOnceAsync());
        var half = registry.List().Single();
        Assert.Equal((true, seed1), (half.Ready, half.ModelId));
        Assert.Contains("SHA-256", half.Error, StringComparison.Ordinal);

        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.FileName), Path.Combine(folder, EncoderManifest.FileName), overwrite: true);
        Assert.Equal(1, await registry.PollOnceAsync());
        var done = registry.List().Single();
        Assert.Equal((true, EncoderManifest.Load(TinyModels.Seed2).ModelId, (string?)null), (done.Ready, done.ModelId, done.Error));
    }

    [Fact]
    public async Task PollTimer_PollOnly_ANewFolderIsLoadedWithoutAnyWatcher()
    {
        await using var registry = Polling(TimeSpan.FromMilliseconds(50));
        var loaded = new ConcurrentDictionary<string, TaskCompletionSource<ModelStatus>>();
        registry.Changed += s => loaded.GetOrAdd(s.Name, _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).TrySetResult(s);
        await registry.StartAsync();

        // Staged under a hidden name and renamed in, as a deploy would, so no poll sees half a folder.
        TinyModels.CopyInto(_models, TinyModels.Seed1, ".new.tmp");
        Directory.Move(Path.Combine(_models, ".new.tmp"), Path.Combine(_models, "new"));
        var status = await loaded.GetOrAdd("new", _ => new(TaskCreationOptions.RunContinuationsAsynchronously)).Task.WaitAsync(Patience);

        Assert.True(status.Ready, status.Error);
    }

    [Fact]
    public async Task StartAsync_PollIntervalNotPositive_Refused()
    {
        await using var registry = Polling(TimeSpan.Zero);
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => registry.StartAsync());
    }
}
