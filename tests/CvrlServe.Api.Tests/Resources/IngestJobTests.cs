using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using CvrlServe.Api.Jobs;
using CvrlServe.Api.Library;
using CvrlServe.Api.Tests.Library;
using Microsoft.Extensions.DependencyInjection;

namespace CvrlServe.Api.Tests.Resources;

/// <summary>Long-video jobs of the library: restarts, and the webhook when a job ends.</summary>
[Collection(SharedApiVideos.Name)]
public sealed class IngestJobTests(ApiVideos videos)
{
    [Fact]
    public async Task Restart_IngestJobsOfAProcessThatDied_OneWithItsFileRunAgainToTheEnd_OneWithoutMarkedFailed()
    {
        await using var first = new CvrlApiFactory();
        // Two jobs a process was running when it died, minutes ago: one's video is still in the data folder.
        await using (var database = LibraryDatabase.Sqlite(Path.Combine(first.DataFolder, "library.db")))
        {
            await database.MigrateAsync(CancellationToken.None);
            var died = new Jobs.ManualTime(DateTimeOffset.UtcNow - TimeSpan.FromMinutes(5));
            var store = new JobStore(database, null, died);
            string video = videos.Path("blue-1.mp4");
            string sha = Convert.ToHexStringLower(SHA256.HashData(await File.ReadAllBytesAsync(video)));
            string payload = JsonSerializer.Serialize(new IngestPayload(sha, new FileInfo(video).Length, CvrlApiFactory.Model, "resumed.mp4", ["resumed"], null), JsonSerializerOptions.Web);
            var kept = await store.CreateAsync(IngestJobs.Kind, "anonymous", CancellationToken.None, payload);
            await store.UpdateAsync(kept.Id, r => r with { State = JobState.Running, Progress = 0.5 }, CancellationToken.None);
            var lost = await store.CreateAsync(IngestJobs.Kind, "anonymous", CancellationToken.None, payload);
            Directory.CreateDirectory(Path.Combine(first.DataFolder, "library-jobs"));
            File.Copy(video, Path.Combine(first.DataFolder, "library-jobs", kept.Id + ".video"));

            await using var second = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DataFolder"] = first.DataFolder });
            await second.StartedAsync();
            using var client = second.Client();

            var done = await VideosApiTests.WaitForJobAsync(client, kept.Id);
            var failed = await VideosApiTests.WaitForJobAsync(client, lost.Id);

            Assert.True(done.GetProperty("state").GetString() == "succeeded", done.GetRawText());
            var entry = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos/{done.GetProperty("result").GetProperty("id").GetString()}", UriKind.Relative));
            Assert.Equal(("resumed.mp4", sha), (entry.GetProperty("name").GetString(), entry.GetProperty("sha256").GetString()));
            Assert.Equal("failed", failed.GetProperty("state").GetString());
            Assert.Equal(JobErrors.Interrupted, failed.GetProperty("error").GetProperty("type").GetString());
            Assert.Empty(Directory.GetFiles(Path.Combine(first.DataFolder, "library-jobs")));
        }
    }

    [Fact]
    public async Task Webhook_JobEnds_SignedCallToTheAllowlistedHostWithTheJob()
    {
        const string Secret = "webhook-secret-for-tests";
        await using var receiver = await WebhookReceiver.StartAsync();
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { ["hooks.test"] = [IPAddress.Loopback] });
        await using var app = new CvrlApiFactory(new Dictionary<string, string?>
        {
            ["Cvrl:Library:Webhooks:AllowedHosts:0"] = "hooks.test",
            ["Cvrl:Library:Webhooks:Secret"] = Secret,
            ["Cvrl:Library:Webhooks:AllowLoopbackForTests"] = "true",
            ["Cvrl:Library:Webhooks:FirstRetrySeconds"] = "0.01",
        }, services: s => s.AddSingleton<IHostResolver>(resolver));
        await app.StartedAsync();
        using var client = app.Client();

        using var refused = await client.PostAsync(new Uri("/v1/videos", UriKind.Relative),
            CvrlApiFactory.Form(videos.Path("red-1.mp4"), ("webhook", $"http://elsewhere.test:{receiver.Port}/done")));
        await Problem.AssertAsync(refused, HttpStatusCode.BadRequest, "invalid-argument");
        using var accepted = await client.PostAsync(new Uri("/v1/videos", UriKind.Relative),
            CvrlApiFactory.Form(videos.Path("red-1.mp4"), ("webhook", $"http://hooks.test:{receiver.Port}/done?token=abc")));
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        string jobId = JsonDocument.Parse(await accepted.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var call = await receiver.First.WaitAsync(TimeSpan.FromMinutes(2));

        Assert.Equal(("POST", "/done", jobId), (call.Method, call.Path, call.EventId));
        var body = JsonDocument.Parse(call.Body).RootElement;
        Assert.Equal((jobId, "succeeded"), (body.GetProperty("id").GetString(), body.GetProperty("state").GetString()));
        // The signature, recomputed here with the shared secret over "t.body".
        string t = call.Signature!.Split(',')[0]["t=".Length..];
        byte[] signed = [.. Encoding.UTF8.GetBytes(t + "."), .. call.Body];
        Assert.Equal($"t={t},v1={Convert.ToHexStringLower(HMACSHA256.HashData(Encoding.UTF8.GetBytes(Secret), signed))}", call.Signature);
        Assert.Equal(["hooks.test"], resolver.Asked);
        Assert.Single(receiver.Requests);
    }

    [Fact]
    public async Task Webhook_ReceiverThatHangs_NextJobsStillRunToTheEnd()
    {
        await using var receiver = await WebhookReceiver.StartAsync();
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        receiver.Respond = async (_, context) =>
        {
            await release.Task.WaitAsync(TimeSpan.FromMinutes(2));
            context.Response.StatusCode = 200;
        };
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { ["hooks.test"] = [IPAddress.Loopback] });
        await using var app = new CvrlApiFactory(new Dictionary<string, string?>
        {
            ["Cvrl:Library:Webhooks:AllowedHosts:0"] = "hooks.test",
            ["Cvrl:Library:Webhooks:Secret"] = "webhook-secret-for-tests",
            ["Cvrl:Library:Webhooks:AllowLoopbackForTests"] = "true",
            ["Cvrl:Library:Webhooks:TimeoutSeconds"] = "120",
        }, services: s => s.AddSingleton<IHostResolver>(resolver));
        await app.StartedAsync();
        using var client = app.Client();

        using var first = await client.PostAsync(new Uri("/v1/videos", UriKind.Relative),
            CvrlApiFactory.Form(videos.Path("blue-2.mp4"), ("webhook", $"http://hooks.test:{receiver.Port}/done")));
        await receiver.First.WaitAsync(TimeSpan.FromMinutes(2));
        // The first job's webhook is still waiting for the receiver; the ingest queue has moved on.
        using var second = await client.PostAsync(new Uri("/v1/videos", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-2.mp4"), ("async", "true")));
        var done = await VideosApiTests.WaitForJobAsync(client, JsonDocument.Parse(await second.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!);

        Assert.Equal(HttpStatusCode.Accepted, first.StatusCode);
        Assert.Equal("succeeded", done.GetProperty("state").GetString());
        Assert.False(release.Task.IsCompleted);
        release.SetResult();
    }
}
