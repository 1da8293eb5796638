using System.IO.Compression;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Tests.Inference;

namespace CvrlServe.Core.Tests.Probes;

public sealed partial class ProbeStoreTests : IDisposable
{
    private readonly string _models = Directory.CreateTempSubdirectory("cvrl-probestore-").FullName;
    private readonly EncoderManifest _manifest = EncoderManifest.Load(TinyModels.Seed1);
    private readonly string _model;

    public ProbeStoreTests() => _model = TinyModels.CopyInto(_models, TinyModels.Seed1, "m");

    public void Dispose() => Directory.Delete(_models, recursive: true);

    private string ProbesFolder => Path.Combine(_model, ProbeStore.FolderName);

    /// <summary>A probe on 64-d clusters named by <paramref name="names"/>: class sets of different sizes tell versions apart.</summary>
    private static LinearProbe Train(string[] names, int seed = 1) =>
        LinearProbe.Train(LinearProbeTests.Clusters(8, seed, names: names), ProbeTrainer.Lbfgs, 0.01);

    [Fact]
    public async Task LoadAsync_SameModel_SamePredictions_SameOnnxWithAnotherView_Refused()
    {
        var probe = Train(["clap", "jump", "wave"]);
        var store = new ProbeStore(_model);
        await store.SaveAsync(LinearProbeTests.Metadata("actions", _manifest, probe, 0.01, []), probe);

        var loaded = await store.LoadAsync("actions", _manifest);
        Assert.All(LinearProbeTests.Clusters(5, seed: 5), t => Assert.Equal(probe.Predict(t.Features), loaded.Probe.Predict(t.Features)));
        Assert.Equal(_manifest.ModelId, loaded.Metadata.ModelId);
        Assert.Equal(["actions"], store.List());
        Assert.True(File.Exists(Path.Combine(ProbesFolder, "actions.json")));

        // Re-exported with another short side: same encoder.onnx, another embedding space.
        var otherView = _manifest with { View = _manifest.View with { ShortSide = 48 } };
        Assert.Equal(_manifest.EncoderSha256, otherView.EncoderSha256);
        var error = await Assert.ThrowsAsync<ProbeMismatchException>(() => store.LoadAsync("actions", otherView));
        Assert.Contains("Retrain the probe", error.Message, StringComparison.Ordinal);
        await Assert.ThrowsAsync<ProbeMismatchException>(() => store.LoadAsync("actions", EncoderManifest.Load(TinyModels.Seed2)));
        await Assert.ThrowsAsync<ProbeMismatchException>(() => store.LoadAsync("actions", _manifest with { Output = _manifest.Output with { Dimension = 128 } }));
    }

    [Fact]
    public async Task LoadAsync_OldRecordBoundToTheEncoderHashOnly_RefusedWithRetrain()
    {
        var probe = Train(["clap", "jump", "wave"]);
        await new ProbeStore(_model).SaveAsync(LinearProbeTests.Metadata("old", _manifest, probe, 0.01, []), probe);
        // What schema 1 wrote: the ONNX hash of this very model, no model id.
        string zip = Path.Combine(ProbesFolder, "old.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Update))
        {
            archive.GetEntry("cvrl-probe.json")!.Delete();
            using var writer = new StreamWriter(archive.CreateEntry("cvrl-probe.json").Open());
            writer.Write($$"""{"schemaVersion":1,"name":"old","encoder":"m","encoderSha256":"{{_manifest.EncoderSha256}}","embeddingSize":64,"classes":["clap","jump","wave"],"trainer":"Lbfgs","l2":0.01}""");
        }

        var error = await Assert.ThrowsAsync<ProbeMismatchException>(() => new ProbeStore(_model).LoadAsync("old", _manifest));
        Assert.Contains("Retrain the probe", error.Message, StringComparison.Ordinal);
        Assert.DoesNotContain(_models, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task LoadAsync_Schema2RecordWithoutViewOrSettings_StillLoads_PredictsAsSaved()
    {
        // A schema-2 probe: no standardization in its pipeline, no view or feature settings in its record.
        var probe = LinearProbe.Train(LinearProbeTests.Clusters(8, 1), ProbeTrainer.Lbfgs, 0.01, standardize: false);
        await new ProbeStore(_model).SaveAsync(LinearProbeTests.Metadata("two", _manifest, probe, 0.01, []), probe);
        string zip = Path.Combine(ProbesFolder, "two.zip");
        using (var archive = ZipFile.Open(zip, ZipArchiveMode.Update))
        {
            archive.GetEntry("cvrl-probe.json")!.Delete();
            using var writer = new StreamWriter(archive.CreateEntry("cvrl-probe.json").Open());
            writer.Write($$"""{"schemaVersion":2,"name":"two","encoder":"m","modelId":"{{_manifest.ModelId}}","embeddingSize":64,"classes":["clap","jump","wave"],"trainer":"Lbfgs","l2":0.01}""");
        }

        var loaded = await new ProbeStore(_model).LoadAsync("two", _manifest);
        Assert.Equal((2, null, null), (loaded.Metadata.SchemaVersion, loaded.Metadata.View, loaded.Metadata.Preset));
        Assert.All(LinearProbeTests.Clusters(5, seed: 5), t => Assert.Equal(probe.Predict(t.Features), loaded.Probe.Predict(t.Features)));
    }

    [Fact]
    public async Task SaveAsync_ProbesAAndADotB_ConcurrentlyManyTimes_NeitherDisturbsTheOther()
    {
        var a = Train(["clap", "jump", "wave"]);
        var ab = Train(["down", "up"]);
        var store = new ProbeStore(_model);
        const int Rounds = 15;
        async Task SaveMany(string name, LinearProbe probe)
        {
            await Task.Yield();
            for (int i = 0; i < Rounds; i++)
            {
                await store.SaveAsync(LinearProbeTests.Metadata(name, _manifest, probe, 0.01, []), probe);
            }
        }

        // A save of "a" must not take "a.b"'s temporary files for its own leftovers (nor the reverse).
        await Task.WhenAll(Task.Run(() => SaveMany("a", a)), Task.Run(() => SaveMany("a.b", ab)));

        Assert.Equal(["a", "a.b"], store.List());
        Assert.Equal(["clap", "jump", "wave"], (await store.LoadAsync("a", _manifest)).Probe.Classes);
        Assert.Equal(["down", "up"], (await store.LoadAsync("a.b", _manifest)).Probe.Classes);
        Assert.Empty(Directory.GetFiles(ProbesFolder, "*.tmp"));
    }

    [Fact]
    public async Task LoadAsync_RacingManySavesFromAnotherStore_AlwaysOneVersionsClassesWithThatVersionsModel()
    {
        // Two stores on one folder share no lock, as two processes would not.
        var writer = new ProbeStore(_model);
        var reader = new ProbeStore(_model);
        var versions = new[] { Train(["clap", "jump", "wave"]), Train(["down", "left", "right", "up"], seed: 2) };
        await writer.SaveAsync(LinearProbeTests.Metadata("p", _manifest, versions[0], 0.01, []), versions[0]);
        var x = LinearProbeTests.Clusters(1, seed: 11)[0].Features;
        var expected = versions.ToDictionary(v => v.Classes.Count, v => v.Predict(x));
        // A long sweep makes a long record: reading the record takes a while, as it would with rich metrics.
        var sweep = Enumerable.Range(0, 10_000).Select(i => new SweepResult(i * 1e-4, 0.5, 0.7)).ToArray();

        using var saving = new CancellationTokenSource();
        var saves = Task.Run(async () =>
        {
            for (int i = 0; !saving.IsCancellationRequested; i++)
            {
                var probe = versions[i % 2];
                await writer.SaveAsync(LinearProbeTests.Metadata("p", _manifest, probe, 0.01, sweep), probe, CancellationToken.None);
            }
        });

        // Cached loads cost nothing, so count the versions actually read from disk: each is a chance to pair wrongly.
        const int Versions = 25;
        var seen = new HashSet<int>();
        int reads = 0;
        StoredProbe? previous = null;
        try
        {
            while (reads < Versions && !saves.IsCompleted)
            {
                var loaded = await reader.LoadAsync("p", _manifest);
                if (!ReferenceEquals(loaded, previous))
                {
                    reads++;
                    previous = loaded;
                    Assert.Equal(loaded.Metadata.Classes, loaded.Probe.Classes);
                    Assert.Equal(expected[loaded.Metadata.Classes.Count], loaded.Probe.Predict(x));
                    seen.Add(loaded.Metadata.Classes.Count);
                }

                await Task.Yield();
            }
        }
        finally
        {
            await saving.CancelAsync();
            await saves;
        }

        Assert.Equal(Versions, reads);
        Assert.Equal(2, seen.Count);
    }

    [Fact]
    public async Task LoadAsync_UnchangedFile_TheCachedProbe_ReplacedByAnotherStore_TheNewVersion()
    {
        var first = Train(["clap", "jump", "wave"]);
        var second = Train(["down", "up"]);
        var store = new ProbeStore(_model);
        await store.SaveAsync(LinearProbeTests.Metadata("p", _manifest, first, 0.01, []), first);

        var loaded = await store.LoadAsync("p", _manifest);
        Assert.Same(loaded, await store.LoadAsync("p", _manifest));

        await new ProbeStore(_model).SaveAsync(LinearProbeTests.Metadata("p", _manifest, second, 0.01, []), second);
        var reloaded = await store.LoadAsync("p", _manifest);
        Assert.Equal(["down", "up"], reloaded.Probe.Classes);
        Assert.Same(reloaded, await store.LoadAsync("p", _manifest));
    }

    [Fact]
    public async Task SaveAsync_LeftoversOfADeadWriter_PreviousProbeServed_OnlyItsOwnOldLeftoversRemoved()
    {
        var first = Train(["clap", "jump", "wave"]);
        var store = new ProbeStore(_model);
        await store.SaveAsync(LinearProbeTests.Metadata("p", _manifest, first, 0.01, []), first);
        // A writer that died after writing half its zip, and leftovers of the probes "p.x" and "p" (a recent one, maybe a live writer's).
        string dead = Leftover("p.zip", File.ReadAllBytes(Path.Combine(ProbesFolder, "p.zip"))[..100], TimeSpan.FromHours(1));
        string deadJson = Leftover("p.json", "{"u8.ToArray(), TimeSpan.FromHours(1));
        string otherProbes = Leftover("p.x.zip", [1, 2, 3], TimeSpan.FromHours(1));
        string recent = Leftover("p.zip", [1, 2, 3], TimeSpan.Zero);

        var survivor = await new ProbeStore(_model).LoadAsync("p", _manifest);
        var x = LinearProbeTests.Clusters(1, seed: 11)[0].Features;
        Assert.Equal(first.Predict(x), survivor.Probe.Predict(x));
        Assert.Equal(["p"], store.List());

        var second = Train(["down", "up"]);
        await store.SaveAsync(LinearProbeTests.Metadata("p", _manifest, second, 0.01, []), second);

        Assert.False(File.Exists(dead));
        Assert.False(File.Exists(deadJson));
        Assert.True(File.Exists(otherProbes));
        Assert.True(File.Exists(recent));
        Assert.Equal(["down", "up"], (await store.LoadAsync("p", _manifest)).Probe.Classes);
    }

    private string Leftover(string file, byte[] content, TimeSpan age)
    {
        string path = Path.Combine(ProbesFolder, $"{file}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(path, content);
        File.SetLastWriteTimeUtc(path, DateTime.UtcNow - age);
        return path;
    }

    [Theory]
    [InlineData("a.zip.0123456789abcdef0123456789abcdef.tmp", "a")]
    [InlineData("a.b.zip.0123456789abcdef0123456789abcdef.tmp", "a.b")]
    [InlineData("a.b.json.0123456789abcdef0123456789abcdef.tmp", "a.b")]
    [InlineData("a.json.zip.0123456789abcdef0123456789abcdef.tmp", "a.json")]
    [InlineData("a.zip.0123456789abcdef.tmp", null)]
    [InlineData("a.zip.0123456789ABCDEF0123456789ABCDEF.tmp", null)]
    [InlineData("a.txt.0123456789abcdef0123456789abcdef.tmp", null)]
    [InlineData("a.zip", null)]
    [InlineData(".zip.0123456789abcdef0123456789abcdef.tmp", null)]
    public void TemporaryOwner_ParsesBackExactlyTheProbeName(string file, string? owner) => Assert.Equal(owner, ProbeStore.TemporaryOwner(file));

    [Theory]
    [InlineData("")]
    [InlineData("../escape")]
    [InlineData("a/b")]
    [InlineData(".hidden")]
    [InlineData("with space")]
    public async Task BadName_InvalidRequest_NoPathInTheMessage(string name)
    {
        var store = new ProbeStore(_model);
        var probe = Train(["clap", "jump", "wave"]);
        var load = await Assert.ThrowsAsync<InvalidRequestException>(() => store.LoadAsync(name, _manifest));
        var save = await Assert.ThrowsAsync<InvalidRequestException>(() => store.SaveAsync(LinearProbeTests.Metadata(name, _manifest, probe, 0.01, []), probe));
        Assert.All(new[] { load, save }, e =>
        {
            Assert.Equal(ErrorKind.InvalidArgument, e.Kind);
            Assert.DoesNotContain(_models, e.Message, StringComparison.Ordinal);
        });
    }

    [Fact]
    public async Task LoadAsync_UnknownOrDamagedProbe_NotFoundOrCorrupt_PathsOnlyInTheDetail()
    {
        var probe = Train(["clap", "jump", "wave"]);
        var store = new ProbeStore(_model);
        await store.SaveAsync(LinearProbeTests.Metadata("good", _manifest, probe, 0.01, []), probe);

        var missing = await Assert.ThrowsAsync<ProbeNotFoundException>(() => store.LoadAsync("nope", _manifest));
        Assert.Equal(ErrorKind.NotFound, missing.Kind);
        Assert.Contains("good", missing.Message, StringComparison.Ordinal); // what does exist

        File.WriteAllText(Path.Combine(ProbesFolder, "junk.zip"), "not a zip");
        var junk = await Assert.ThrowsAsync<ProbeCorruptException>(() => store.LoadAsync("junk", _manifest));

        // A record whose classes are not the ones its model scores: refused, not served under the wrong names.
        File.Copy(Path.Combine(ProbesFolder, "good.zip"), Path.Combine(ProbesFolder, "swapped.zip"));
        using (var archive = ZipFile.Open(Path.Combine(ProbesFolder, "swapped.zip"), ZipArchiveMode.Update))
        {
            archive.GetEntry("cvrl-probe.json")!.Delete();
            using var writer = new StreamWriter(archive.CreateEntry("cvrl-probe.json").Open());
            writer.Write(System.Text.Json.JsonSerializer.Serialize(LinearProbeTests.Metadata("swapped", _manifest, probe, 0.01, []) with { Classes = ["down", "left", "up"] }, EncoderManifest.Json));
        }

        var swapped = await Assert.ThrowsAsync<ProbeCorruptException>(() => store.LoadAsync("swapped", _manifest));
        Assert.All(new CvrlException[] { missing, junk, swapped }, e =>
        {
            Assert.DoesNotContain(_models, e.Message, StringComparison.Ordinal);
            Assert.Contains(ProbesFolder, e.Detail, StringComparison.Ordinal);
        });
        Assert.Equal(ErrorKind.Corrupt, junk.Kind);
    }
}
