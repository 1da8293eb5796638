using System.Text.Json;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Storage;

namespace CvrlServe.Core.Tests.Probes;

/// <summary>One probes folder shared by several stores, as by replicas on one volume: they share no lock in memory.</summary>
public sealed partial class ProbeStoreTests
{
    [Fact]
    public async Task LoadAsync_ReplacedWithEqualLengthAndTime_TheZipsDirectoryTellsThemApart()
    {
        var probe = Train(["clap", "jump", "wave"]);
        var reader = new ProbeStore(_model);
        var first = LinearProbeTests.Metadata("p", _manifest, probe, 0.01, []) with { CreatedUtc = new DateTimeOffset(2025, 1, 1, 0, 0, 0, TimeSpan.Zero) };
        await new ProbeStore(_model).SaveAsync(first, probe);
        string zip = Path.Combine(ProbesFolder, "p.zip");
        var time = File.GetLastWriteTimeUtc(zip);
        long length = new FileInfo(zip).Length;
        Assert.Equal(first.CreatedUtc, (await reader.LoadAsync("p", _manifest)).Metadata.CreatedUtc);

        // Another replica saves again, on a file system whose clock cannot tell the two writes apart.
        var second = first with { CreatedUtc = first.CreatedUtc.AddSeconds(1) };
        await new ProbeStore(_model).SaveAsync(second, probe);
        File.SetLastWriteTimeUtc(zip, time);

        Assert.Equal(length, new FileInfo(zip).Length);
        Assert.Equal(second.CreatedUtc, (await reader.LoadAsync("p", _manifest)).Metadata.CreatedUtc);
    }

    [Fact]
    public async Task SaveAsync_FolderLockHeldElsewhere_TheRenamesWaitForIt_OldVersionServedMeanwhile()
    {
        var first = Train(["clap", "jump", "wave"]);
        var second = Train(["down", "up"]);
        var store = new ProbeStore(_model);
        await store.SaveAsync(LinearProbeTests.Metadata("p", _manifest, first, 0.01, []), first);
        // A lock of its own on the folder's lock file: to flock, another process.
        var elsewhere = new FileLock(Path.Combine(ProbesFolder, ".lock"));

        Task save;
        using (await elsewhere.AcquireAsync())
        {
            save = store.SaveAsync(LinearProbeTests.Metadata("p", _manifest, second, 0.01, []), second);
            // Both temporaries written: the save is at its renames, waiting for the lock.
            await Poll.UntilAsync(() => save.IsCompleted || Directory.GetFiles(ProbesFolder, "p.json.*.tmp").Length == 1, TimeSpan.FromSeconds(20));

            Assert.False(save.IsCompleted);
            Assert.Equal(["clap", "jump", "wave"], (await new ProbeStore(_model).LoadAsync("p", _manifest)).Probe.Classes);
            Assert.Contains("clap", File.ReadAllText(Path.Combine(ProbesFolder, "p.json")), StringComparison.Ordinal);
        }

        await save.WaitAsync(TimeSpan.FromSeconds(20));
        Assert.Equal(["down", "up"], (await new ProbeStore(_model).LoadAsync("p", _manifest)).Probe.Classes);
        Assert.Contains("down", File.ReadAllText(Path.Combine(ProbesFolder, "p.json")), StringComparison.Ordinal);
    }

    [Fact]
    public async Task SaveAndDeleteAsync_ThreeStoresRacingOnOneName_ZipAndRecordAlwaysOfOneVersion()
    {
        var versions = new[] { Train(["clap", "jump", "wave"]), Train(["down", "left", "right", "up"], seed: 2) };
        var stores = Enumerable.Range(0, 3).Select(_ => new ProbeStore(_model)).ToArray();
        string zip = Path.Combine(ProbesFolder, "p.zip");
        string json = Path.Combine(ProbesFolder, "p.json");
        var outcomes = new HashSet<string>();
        for (int round = 0; round < 12; round++)
        {
            await Task.WhenAll(
                Task.Run(() => stores[0].SaveAsync(LinearProbeTests.Metadata("p", _manifest, versions[0], 0.01, []), versions[0])),
                Task.Run(() => stores[1].SaveAsync(LinearProbeTests.Metadata("p", _manifest, versions[1], 0.01, []), versions[1])),
                Task.Run(() => stores[2].DeleteAsync("p")));

            if (!File.Exists(zip))
            {
                Assert.False(File.Exists(json), "a record without its zip");
                outcomes.Add("deleted");
                continue;
            }

            var loaded = await new ProbeStore(_model).LoadAsync("p", _manifest);
            var record = JsonSerializer.Deserialize<ProbeMetadata>(File.ReadAllText(json), EncoderManifest.Json)!;
            Assert.Equal(loaded.Metadata.Classes, loaded.Probe.Classes);
            Assert.Equal(loaded.Metadata.Classes, record.Classes);
            Assert.Equal(loaded.Metadata.CreatedUtc, record.CreatedUtc);
            outcomes.Add(string.Join(',', record.Classes));
        }

        Assert.NotEmpty(outcomes);
        Assert.Empty(Directory.GetFiles(ProbesFolder, "*.tmp"));
    }

    [Fact]
    public async Task DeleteAsync_CachedElsewhere_GoneForEveryStoreAtOnce()
    {
        var probe = Train(["clap", "jump", "wave"]);
        var reader = new ProbeStore(_model);
        await new ProbeStore(_model).SaveAsync(LinearProbeTests.Metadata("p", _manifest, probe, 0.01, []), probe);
        await reader.LoadAsync("p", _manifest);

        Assert.True(await new ProbeStore(_model).DeleteAsync("p"));

        await Assert.ThrowsAsync<ProbeNotFoundException>(() => reader.LoadAsync("p", _manifest));
        Assert.False(await reader.DeleteAsync("p"));
        Assert.Equal([".lock"], Directory.GetFiles(ProbesFolder).Select(Path.GetFileName));
    }
}
