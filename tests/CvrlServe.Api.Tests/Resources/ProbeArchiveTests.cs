using System.IO.Compression;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Library;

namespace CvrlServe.Api.Tests.Resources;

/// <summary>Probe training from an uploaded archive: a recorded background job, safe extraction, restarts.</summary>
[Collection(SharedApiVideos.Name)]
public sealed class ProbeArchiveTests(ApiVideos videos)
{
    [Fact]
    public async Task Archive_ClassFolders_202Job_SucceedsAndTheProbeClassifies_OthersCannotSeeTheJob()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var admin = app.Client(CvrlApiFactory.AdminKey);
        byte[] zip = Zip(("colours/red/a.mp4", videos.Path("red-0.mp4")), ("colours/red/b.mp4", videos.Path("red-1.mp4")), ("colours/red/c.mp4", videos.Path("red-2.mp4")),
            ("colours/blue/a.mp4", videos.Path("blue-0.mp4")), ("colours/blue/b.mp4", videos.Path("blue-1.mp4")), ("colours/blue/c.mp4", videos.Path("blue-2.mp4")));
        using var accepted = await admin.PostAsync(new Uri("/v1/probes/archive", UriKind.Relative), ArchiveForm(zip, "from-zip", ("clipsPerVideo", "2")));
        var job = await ReadAsync(accepted, HttpStatusCode.Accepted);
        string id = job.GetProperty("id").GetString()!;
        Assert.Equal($"/v1/jobs/{id}", accepted.Headers.Location?.ToString());

        var done = await WaitAsync(admin, id);
        Assert.Equal("succeeded", done.GetProperty("state").GetString());
        Assert.Equal(1, done.GetProperty("progress").GetDouble());
        Assert.Equal(12, done.GetProperty("result").GetProperty("probe").GetProperty("trainingExamples").GetInt32()); // 6 videos × 2 clips

        using var client = app.Client();
        using var classified = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-2.mp4"), ("probe", "from-zip")));
        Assert.Equal("red", (await ReadAsync(classified, HttpStatusCode.OK)).GetProperty("labels")[0].GetProperty("label").GetString());

        using var other = app.Client(CvrlApiFactory.ClientKey);
        using var hidden = await other.GetAsync(new Uri($"/v1/jobs/{id}", UriKind.Relative));
        await Problem.AssertAsync(hidden, HttpStatusCode.NotFound, "not-found");
        Assert.Empty(Directory.GetFileSystemEntries(Path.Combine(app.DataFolder, "job-work")));
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    [Fact]
    public async Task Archive_Hostile_JobFailsWithAProblem_NothingWrittenOutsideItsFolder()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var admin = app.Client(CvrlApiFactory.AdminKey);
        byte[] zip = Zip(("red/a.mp4", videos.Path("red-0.mp4")), ("../../escaped.mp4", videos.Path("red-1.mp4")), ("blue/a.mp4", videos.Path("blue-0.mp4")));
        using var accepted = await admin.PostAsync(new Uri("/v1/probes/archive", UriKind.Relative), ArchiveForm(zip, "hostile"));
        string id = (await ReadAsync(accepted, HttpStatusCode.Accepted)).GetProperty("id").GetString()!;
        var done = await WaitAsync(admin, id);
        Assert.Equal("failed", done.GetProperty("state").GetString());
        Assert.Equal("urn:cvrlserve:problem:invalid-argument", done.GetProperty("error").GetProperty("type").GetString());
        Assert.DoesNotContain(app.Root, done.GetRawText(), StringComparison.Ordinal);
        Assert.Empty(Directory.GetFiles(app.Root, "escaped.mp4", SearchOption.AllDirectories));
        Assert.Empty(Directory.GetFiles(Path.GetDirectoryName(app.Root)!, "escaped.mp4"));
        Assert.False(File.Exists(Path.Combine(app.DataFolder, "probes", CvrlApiFactory.Model, "probes", "hostile.zip")));
    }

    [Fact]
    public async Task Restart_JobOfAProcessThatDied_MarkedFailedInterrupted_NotLost()
    {
        string id;
        await using (var first = new CvrlApiFactory())
        {
            // A job a process was running when it died, a lease and more ago: its heartbeat stopped then.
            var died = new Jobs.ManualTime(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(5));
            await using var database = LibraryDatabase.Sqlite(Path.Combine(first.DataFolder, "library.db"));
            await database.MigrateAsync(CancellationToken.None);
            var store = new JobStore(database, null, died);
            var job = await store.CreateAsync(ProbeArchiveJobs.Kind, "anonymous", CancellationToken.None);
            await store.UpdateAsync(job.Id, r => r with { State = JobState.Running, Progress = 0.5 }, CancellationToken.None);
            id = job.Id;
            string dataFolder = first.DataFolder;
            await using var second = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DataFolder"] = dataFolder });
            await second.StartedAsync();
            using var client = second.Client();
            var record = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{id}", UriKind.Relative));
            Assert.Equal("failed", record.GetProperty("state").GetString());
            Assert.Equal(JobErrors.Interrupted, record.GetProperty("error").GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task Start_WorkOfFinishedAndUnknownJobsRemoved_LiveJobsWorkKept()
    {
        await using var first = new CvrlApiFactory();
        string work = Directory.CreateDirectory(Path.Combine(first.DataFolder, "job-work")).FullName;
        await using var database = LibraryDatabase.Sqlite(Path.Combine(first.DataFolder, "library.db"));
        await database.MigrateAsync(CancellationToken.None);
        var store = new JobStore(database, null); // another replica, alive: its heartbeats are fresh
        var live = await store.CreateAsync(ProbeArchiveJobs.Kind, "anonymous", CancellationToken.None);
        var finished = await store.CreateAsync(ProbeArchiveJobs.Kind, "anonymous", CancellationToken.None);
        await store.UpdateAsync(finished.Id, r => r with { State = JobState.Succeeded }, CancellationToken.None);
        string unknown = new string('a', 32);
        foreach (string id in new[] { live.Id, finished.Id, unknown })
        {
            await File.WriteAllTextAsync(Path.Combine(work, id + ".zip"), "archive");
            Directory.CreateDirectory(Path.Combine(work, id));
        }

        await using var replica = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DataFolder"] = first.DataFolder });
        await replica.StartedAsync();

        string[] expected = [live.Id, live.Id + ".zip"];
        Assert.Equal(expected.Order(StringComparer.Ordinal), Directory.GetFileSystemEntries(work).Select(Path.GetFileName).Order(StringComparer.Ordinal));
    }

    [Fact]
    public async Task Archive_NeedsAdminAndAName()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        byte[] zip = Zip(("red/a.mp4", videos.Path("red-0.mp4")), ("blue/a.mp4", videos.Path("blue-0.mp4")));
        using var client = app.Client(CvrlApiFactory.ClientKey);
        using var forbidden = await client.PostAsync(new Uri("/v1/probes/archive", UriKind.Relative), ArchiveForm(zip, "x"));
        await Problem.AssertAsync(forbidden, HttpStatusCode.Forbidden, "forbidden");
        using var admin = app.Client(CvrlApiFactory.AdminKey);
        using var unnamed = await admin.PostAsync(new Uri("/v1/probes/archive", UriKind.Relative), ArchiveForm(zip, null));
        Assert.Equal("name", (await Problem.AssertAsync(unnamed, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    private static byte[] Zip(params (string Entry, string File)[] entries)
    {
        using var memory = new MemoryStream();
        using (var archive = new ZipArchive(memory, ZipArchiveMode.Create, leaveOpen: true))
        {
            foreach (var (entry, file) in entries)
            {
                using var target = archive.CreateEntry(entry).Open();
                using var source = File.OpenRead(file);
                source.CopyTo(target);
            }
        }

        return memory.ToArray();
    }

    private static MultipartFormDataContent ArchiveForm(byte[] zip, string? name, params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(zip);
        file.Headers.ContentType = new MediaTypeHeaderValue("application/zip");
        form.Add(file, "file", "videos.zip");
        if (name is not null)
        {
            form.Add(new StringContent(name), "name");
        }

        foreach (var (field, value) in fields)
        {
            form.Add(new StringContent(value), field);
        }

        return form;
    }

    private static async Task<JsonElement> ReadAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>Polls the job until it ends (the job API is the only view of it a client has).</summary>
    private static async Task<JsonElement> WaitAsync(HttpClient client, string id)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (true)
        {
            var job = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{id}", UriKind.Relative));
            string state = job.GetProperty("state").GetString()!;
            if (state is "succeeded" or "failed" || clock.Elapsed > TimeSpan.FromMinutes(2))
            {
                return job;
            }

            await Task.Delay(100);
        }
    }
}
