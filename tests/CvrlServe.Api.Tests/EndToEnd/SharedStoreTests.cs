using System.Diagnostics;
using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using CvrlServe.Core.Inference;
using Xunit.Abstractions;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// Replicas on one shared models folder and one shared data folder, as on a ReadWriteMany volume: real
/// service processes, polling only (no file-system events help), a short job lease. What it proves: a probe
/// trained on one replica serves on another and a deletion is seen there; concurrent saves of one name from
/// two replicas leave one whole version; model folders copied in or replaced reach every replica; any
/// replica answers for any job; a replica starting interrupts neither another's running job nor its upload
/// in flight; a killed replica's job is marked interrupted by a survivor within the lease.
/// </summary>
public sealed class SharedStoreTests(SharedStoreFixture fixture, ITestOutputHelper output) : IClassFixture<SharedStoreFixture>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Probes_TrainedOnA_ClassifyOnB_DeletedOnA_GoneOnB()
    {
        await fixture.TrainAsync(fixture.A, "shared-colours", "red", "blue");
        using var onB = fixture.B.Client();

        var probes = (await onB.GetFromJsonAsync<JsonElement>(new Uri($"v1/models/{KestrelServer.Model}", UriKind.Relative))).GetProperty("probes");
        Assert.Contains("shared-colours", probes.EnumerateArray().Select(p => p.GetProperty("name").GetString()));
        string requestId = "shared-" + Guid.NewGuid().ToString("N");
        using (var classified = await ClassifyAsync(onB, fixture.Videos.Path("red-2.mp4"), "shared-colours", requestId))
        {
            string body = await classified.Content.ReadAsStringAsync();
            Assert.True(classified.StatusCode == HttpStatusCode.OK, body);
            Assert.Equal("red", JsonDocument.Parse(body).RootElement.GetProperty("labels")[0].GetProperty("label").GetString());
            Assert.Equal(requestId, classified.Headers.GetValues("X-Request-Id").Single());
        }

        // The request id the client sent is the one B logged.
        await fixture.B.WaitForLogAsync($"Request {requestId}: classify:shared-colours", Patience);

        using var adminA = fixture.A.Client(KestrelServer.AdminKey);
        using (var deleted = await adminA.DeleteAsync(new Uri($"v1/probes/{KestrelServer.Model}/shared-colours", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        }

        using var gone = await ClassifyAsync(onB, fixture.Videos.Path("red-2.mp4"), "shared-colours", null);
        await Problem.AssertAsync(gone, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task Probes_SavedAtOnceOnAAndB_OneWholeVersionOnDiskAndOnEveryReplica()
    {
        string folder = Path.Combine(fixture.Root, "data", "probes", KestrelServer.Model, "probes");
        for (int round = 0; round < 3; round++)
        {
            await Task.WhenAll(fixture.TrainAsync(fixture.A, "raced", "red", "blue"), fixture.TrainAsync(fixture.B, "raced", "warm", "cool"));

            string[][] served = await Task.WhenAll(new[] { fixture.A, fixture.B }.Select(async replica =>
            {
                using var client = replica.Client();
                var probe = await client.GetFromJsonAsync<JsonElement>(new Uri($"v1/probes/{KestrelServer.Model}/raced", UriKind.Relative));
                return probe.GetProperty("probe").GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray();
            }));
            using var archive = ZipFile.OpenRead(Path.Combine(folder, "raced.zip"));
            using var inZip = JsonDocument.Parse(archive.GetEntry("cvrl-probe.json")!.Open());
            using var record = JsonDocument.Parse(File.ReadAllText(Path.Combine(folder, "raced.json")));
            string[] Classes(JsonDocument d) => d.RootElement.GetProperty("classes").EnumerateArray().Select(c => c.GetString()!).ToArray();

            Assert.True(string.Join(',', served[0]) is "blue,red" or "cool,warm", string.Join(',', served[0]));
            Assert.Equal(served[0], served[1]);
            Assert.Equal(served[0], Classes(inZip));
            Assert.Equal(Classes(inZip), Classes(record));
            Assert.Equal(inZip.RootElement.GetProperty("createdUtc").GetDateTimeOffset(), record.RootElement.GetProperty("createdUtc").GetDateTimeOffset());
        }

        Assert.Empty(Directory.GetFiles(folder, "*.tmp"));
    }

    [Fact]
    public async Task Models_CopiedIn_ThenReplaced_EveryReplicaServesTheNewModelId()
    {
        string seed1 = Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed1");
        string seed2 = Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed2");
        string folder = Path.Combine(fixture.Root, "models", "second");
        var clock = Stopwatch.StartNew();

        // A plain copy, file by file: a poll may catch it half-way, the next one loads it whole.
        CvrlApiFactory.CopyModel(seed2, folder);
        string seed2Id = EncoderManifest.Load(seed2).ModelId;
        foreach (var replica in new[] { fixture.A, fixture.B })
        {
            await WaitForModelIdAsync(replica, "second", seed2Id);
        }

        output.WriteLine($"new model on both replicas after {clock.Elapsed.TotalSeconds:F1} s");
        CvrlApiFactory.CopyModel(seed1, folder);
        string seed1Id = EncoderManifest.Load(seed1).ModelId;
        await WaitForModelIdAsync(fixture.B, "second", seed1Id);
        using var onB = fixture.B.Client();
        var (modelId, _) = await ApiCalls.EmbedAsync(onB, fixture.Videos.Path("blue-0.mp4"), "second");
        Assert.Equal(seed1Id, modelId);
        await WaitForModelIdAsync(fixture.A, "second", seed1Id);
        output.WriteLine($"replaced model on both replicas after {clock.Elapsed.TotalSeconds:F1} s");
    }

    [Fact]
    public async Task Jobs_StartedOnA_AnsweredByB_AReplicaStarting_LeavesTheJobAndAnUploadInFlightAlone()
    {
        using var adminA = fixture.A.Client(KestrelServer.AdminKey);
        using var adminB = fixture.B.Client(KestrelServer.AdminKey);
        // Long enough to outlast another replica's start (about 5 s here) twice over.
        string id = await fixture.SubmitArchiveAsync(adminA, "from-archive", copies: 2);
        var clock = Stopwatch.StartNew();
        await WaitForJobAsync(adminB, id, state => state is "running" or "succeeded" or "failed");

        // An upload on A, most of it on the shared disk, when another replica starts on the same folders.
        using var form = CvrlApiFactory.Form(fixture.Videos.Path("red-1.mp4"));
        using var held = await HeldBackContent.FromAsync(form, tailBytes: 64);
        using var onA = fixture.A.Client();
        var upload = onA.PostAsync(new Uri("v1/embeddings", UriKind.Relative), held);
        try
        {
            string uploads = Path.Combine(fixture.Root, "data", "uploads");
            await held.HeadSent.WaitAsync(Patience);
            await UntilAsync(() => Directory.Exists(uploads) && Directory.GetFiles(uploads, "*.upload").Length > 0, Patience);

            await using var third = await fixture.StartReplicaAsync();
            output.WriteLine($"third replica ready {clock.Elapsed.TotalSeconds:F1} s after the job started");
            using var adminC = third.Client(KestrelServer.AdminKey);
            var seen = await adminC.GetFromJsonAsync<JsonElement>(new Uri($"v1/jobs/{id}", UriKind.Relative));
            Assert.True(seen.GetProperty("state").GetString() == "running", $"the job should still run when the third replica is up: {seen}");
            Assert.NotEmpty(Directory.GetFiles(uploads, "*.upload"));
            held.Release();
            using (var response = await upload)
            {
                Assert.True(response.StatusCode == HttpStatusCode.OK, await response.Content.ReadAsStringAsync());
            }

            // Every replica gives the same answer, while it runs and when it is done.
            var onB = await adminB.GetFromJsonAsync<JsonElement>(new Uri($"v1/jobs/{id}", UriKind.Relative));
            var done = await WaitForJobAsync(adminC, id, state => state is "succeeded" or "failed");
            output.WriteLine($"job done after {clock.Elapsed.TotalSeconds:F1} s");
            Assert.True(done.GetProperty("state").GetString() == "succeeded", done.ToString());
            Assert.Equal(onB.GetProperty("instance").GetString(), done.GetProperty("instance").GetString());
            Assert.Equal(done.ToString(), (await adminB.GetFromJsonAsync<JsonElement>(new Uri($"v1/jobs/{id}", UriKind.Relative))).ToString());
            Assert.Equal(done.ToString(), (await adminA.GetFromJsonAsync<JsonElement>(new Uri($"v1/jobs/{id}", UriKind.Relative))).ToString());
        }
        finally
        {
            held.Release();
        }
    }

    [Fact]
    public async Task Jobs_ReplicaKilledWhileItHoldsAJob_ASurvivorMarksItInterruptedWithinTheLease()
    {
        string id;
        await using (var doomed = await fixture.StartReplicaAsync())
        {
            using var admin = doomed.Client(KestrelServer.AdminKey);
            id = await fixture.SubmitArchiveAsync(admin, "never-finished", copies: 1);
            await doomed.KillAsync();
        }

        var clock = Stopwatch.StartNew();
        using var adminB = fixture.B.Client(KestrelServer.AdminKey);
        var job = await WaitForJobAsync(adminB, id, state => state is "succeeded" or "failed");
        output.WriteLine($"marked {job.GetProperty("state")} {clock.Elapsed.TotalSeconds:F1} s after the kill");
        Assert.Equal("urn:cvrlserve:problem:interrupted", job.GetProperty("error").GetProperty("type").GetString());
        // Its archive and extracted videos on the shared disk go too, removed by the replica that noticed.
        string work = Path.Combine(fixture.Root, "data", "job-work");
        await UntilAsync(() => !Directory.EnumerateFileSystemEntries(work, id + "*").Any(), Patience);
        Assert.Empty(Directory.EnumerateFileSystemEntries(work, id + "*"));
    }

    /// <summary>Waits for a state of the shared disk (no event announces it): polls, bounded; the caller asserts.</summary>
    private static async Task UntilAsync(Func<bool> condition, TimeSpan limit)
    {
        var clock = Stopwatch.StartNew();
        while (!condition() && clock.Elapsed < limit)
        {
            await Task.Delay(20);
        }
    }

    private static async Task<HttpResponseMessage> ClassifyAsync(HttpClient client, string video, string probe, string? requestId)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, new Uri("v1/classify", UriKind.Relative)) { Content = CvrlApiFactory.Form(video, ("probe", probe)) };
        if (requestId is not null)
        {
            request.Headers.Add("X-Request-Id", requestId);
        }

        return await client.SendAsync(request);
    }

    private static async Task WaitForModelIdAsync(KestrelServer replica, string model, string modelId)
    {
        using var client = replica.Client();
        var clock = Stopwatch.StartNew();
        JsonElement seen = default;
        while (clock.Elapsed < Patience)
        {
            using var response = await client.GetAsync(new Uri($"v1/models/{model}", UriKind.Relative));
            if (response.StatusCode == HttpStatusCode.OK)
            {
                seen = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement.Clone();
                if (seen.GetProperty("ready").GetBoolean() && seen.GetProperty("modelId").GetString() == modelId)
                {
                    return;
                }
            }

            await Task.Delay(100);
        }

        Assert.Fail($"{replica.BaseAddress} did not serve model {model} as {modelId} within {Patience}: {seen}");
    }

    /// <summary>Polls the job (a state no event announces) until <paramref name="until"/> holds for its state, bounded.</summary>
    private static async Task<JsonElement> WaitForJobAsync(HttpClient client, string id, Func<string, bool> until)
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            var job = await client.GetFromJsonAsync<JsonElement>(new Uri($"v1/jobs/{id}", UriKind.Relative));
            if (until(job.GetProperty("state").GetString()!))
            {
                return job;
            }

            Assert.True(clock.Elapsed < Patience, $"job {id} did not get there within {Patience}: {job}");
            await Task.Delay(100);
        }
    }
}

/// <summary>Two replicas (A and B) on one shared root (models and data), and the videos the tests send them.</summary>
public sealed class SharedStoreFixture : IAsyncLifetime
{
    /// <summary>Polling only, fast; a short lease, so a dead replica's job is noticed in seconds.</summary>
    private static readonly Dictionary<string, string?> Settings = new()
    {
        ["Cvrl__DefaultModel"] = KestrelServer.Model,
        ["Cvrl__ChangeDetection"] = "Poll",
        ["Cvrl__PollIntervalSeconds"] = "0.5",
        ["Cvrl__JobHeartbeatSeconds"] = "0.5",
        ["Cvrl__JobLeaseSeconds"] = "5",
    };

    private readonly Lazy<Task<(string ModelId, (string Colour, float[] Embedding)[] Examples)>> _embeddings;

    public SharedStoreFixture() => _embeddings = new(EmbedColoursAsync);

    public string Root { get; } = Directory.CreateTempSubdirectory("cvrl-shared-").FullName;

    public ApiVideos Videos { get; private set; } = null!;

    public KestrelServer A { get; private set; } = null!;

    public KestrelServer B { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        CvrlApiFactory.CopyModel(Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed1"), Path.Combine(Root, "models", KestrelServer.Model));
        var videos = Task.Run(() => new ApiVideos());
        var a = StartReplicaAsync();
        var b = StartReplicaAsync();
        try
        {
            await Task.WhenAll(videos, a, b);
        }
        finally
        {
            Videos = videos.IsCompletedSuccessfully ? videos.Result : null!;
            A = a.IsCompletedSuccessfully ? a.Result : null!;
            B = b.IsCompletedSuccessfully ? b.Result : null!;
        }
    }

    public async Task DisposeAsync()
    {
        try
        {
            foreach (var replica in new[] { A, B }.Where(r => r is not null))
            {
                await replica.DisposeAsync();
            }
        }
        finally
        {
            Videos?.Dispose();
            Directory.Delete(Root, recursive: true);
        }
    }

    /// <summary>One more replica on the shared folders; the caller disposes it.</summary>
    public Task<KestrelServer> StartReplicaAsync() => KestrelServer.StartAsync(Settings, Root);

    /// <summary>
    /// Trains probe <paramref name="name"/> through <paramref name="replica"/> on the red and blue videos'
    /// embeddings, labelled <paramref name="redLabel"/> and <paramref name="blueLabel"/>; asserts 201.
    /// </summary>
    public async Task TrainAsync(KestrelServer replica, string name, string redLabel, string blueLabel)
    {
        var (modelId, embeddings) = await _embeddings.Value;
        var examples = embeddings.Select(e => new { label = e.Colour == "red" ? redLabel : blueLabel, embedding = e.Embedding }).ToArray();
        using var admin = replica.Client(KestrelServer.AdminKey);
        using var response = await admin.PostAsJsonAsync(new Uri("v1/probes", UriKind.Relative), new { name, model = KestrelServer.Model, modelId, examples });
        Assert.True(response.StatusCode == HttpStatusCode.Created, await response.Content.ReadAsStringAsync());
    }

    /// <summary>
    /// Submits a red/blue archive for probe training (<paramref name="copies"/> × five videos, 64 clips each):
    /// asserts 202 and returns the job id.
    /// </summary>
    public async Task<string> SubmitArchiveAsync(HttpClient admin, string probe, int copies)
    {
        using var memory = new MemoryStream();
        using (var archive = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            for (int copy = 0; copy < copies; copy++)
            {
                foreach (string video in new[] { "red-0", "red-1", "blue-0", "blue-1", "moving" })
                {
                    string label = video == "moving" ? "red" : video[..^2];
                    await using var target = archive.CreateEntry($"{label}/{video}-{copy}.mp4").Open();
                    await using var source = File.OpenRead(Videos.Path(video + ".mp4"));
                    await source.CopyToAsync(target);
                }
            }
        }

        using var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(memory.ToArray());
        file.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        form.Add(file, "file", "videos.zip");
        form.Add(new StringContent(probe), "name");
        form.Add(new StringContent("64"), "clipsPerVideo");
        using var response = await admin.PostAsync(new Uri("v1/probes/archive", UriKind.Relative), form);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Accepted, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
    }

    private async Task<(string ModelId, (string Colour, float[] Embedding)[] Examples)> EmbedColoursAsync()
    {
        using var client = A.Client();
        var examples = new List<(string, float[])>();
        string modelId = "";
        foreach (string colour in new[] { "red", "blue" })
        {
            for (int i = 0; i < 3; i++)
            {
                (modelId, float[] embedding) = await ApiCalls.EmbedAsync(client, Videos.Path($"{colour}-{i}.mp4"));
                examples.Add((colour, embedding));
            }
        }

        return (modelId, examples.ToArray());
    }
}
