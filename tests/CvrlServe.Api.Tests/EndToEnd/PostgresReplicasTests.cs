using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using CvrlServe.Api.Tests.Library;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// Two service processes (replicas) on one PostgreSQL database, each with its own models copy and data
/// folder: each sees the other's stored videos and jobs at once (they are read from the database), and the
/// other's writes reach its search index within a few sync intervals.
/// </summary>
[Collection(SharedPostgres.Name)]
public sealed class PostgresReplicasTests(PostgresServer postgres) : IDisposable
{
    private readonly ApiVideos _videos = new();

    public void Dispose() => _videos.Dispose();

    [Fact]
    public async Task TwoReplicas_OneDatabase_EachSeesAndSearchesTheOthersVideos()
    {
        var settings = new Dictionary<string, string?>
        {
            ["Cvrl__Library__Postgres"] = await postgres.CreateDatabaseAsync(),
            ["Cvrl__Library__SyncIntervalSeconds"] = "0.2",
        };
        // Started together: both apply the migrations, under the advisory lock.
        var started = await Task.WhenAll(KestrelServer.StartAsync(settings), KestrelServer.StartAsync(settings));
        await using var a = started[0];
        await using var b = started[1];
        using var onA = a.Client(KestrelServer.ClientKey);
        using var onB = b.Client(KestrelServer.ClientKey);
        using var adminOnA = a.Client(KestrelServer.AdminKey);

        string red = await StoreAsync(onA, "red-0.mp4");
        string blue = await StoreAsync(onB, "blue-0.mp4");
        var fromB = await onB.GetFromJsonAsync<JsonElement>(new Uri($"v1/videos/{red}", UriKind.Relative));
        using var sameOnB = await onB.PostAsync(new Uri("v1/videos", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-0.mp4")));

        Assert.Equal(red, fromB.GetProperty("id").GetString());
        Assert.Equal(HttpStatusCode.OK, sameOnB.StatusCode);
        Assert.Equal(red, JsonDocument.Parse(await sameOnB.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString());
        // B's index learns of A's video from the change log; A's of B's.
        await UntilAsync(async () => (await HitsAsync(onB, blue)).Contains(red), "replica B's search to find the video stored on A");
        await UntilAsync(async () => (await HitsAsync(onA, red)).Contains(blue), "replica A's search to find the video stored on B");

        using var deleted = await adminOnA.DeleteAsync(new Uri($"v1/videos/{red}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await UntilAsync(async () => !(await HitsAsync(onB, blue)).Contains(red), "replica B's search to drop the video deleted on A");
        using var gone = await onB.GetAsync(new Uri($"v1/videos/{red}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NotFound, gone.StatusCode);

        // A job accepted by one replica is answered by the other.
        using var accepted = await onA.PostAsync(new Uri("v1/videos", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-1.mp4"), ("async", "true")));
        Assert.Equal(HttpStatusCode.Accepted, accepted.StatusCode);
        string job = JsonDocument.Parse(await accepted.Content.ReadAsStringAsync()).RootElement.GetProperty("id").GetString()!;
        var done = await Resources.VideosApiTests.WaitForJobAsync(onB, job);
        Assert.Equal("succeeded", done.GetProperty("state").GetString());
    }

    private async Task<string> StoreAsync(HttpClient client, string video)
    {
        using var response = await client.PostAsync(new Uri("v1/videos", UriKind.Relative), CvrlApiFactory.Form(_videos.Path(video)));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement.GetProperty("id").GetString()!;
    }

    private static async Task<string[]> HitsAsync(HttpClient client, string videoId)
    {
        using var response = await client.PostAsJsonAsync(new Uri("v1/search", UriKind.Relative), new { videoId, k = 10 });
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
        Assert.True(response.IsSuccessStatusCode, json.GetRawText());
        return json.GetProperty("hits").EnumerateArray().Select(h => h.GetProperty("videoId").GetString()!).ToArray();
    }

    // Another process's state can only be polled; the deadline is far above the 0.2 s sync interval.
    private static async Task UntilAsync(Func<Task<bool>> condition, string what)
    {
        var clock = Stopwatch.StartNew();
        while (!await condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"waited 30 s for {what}");
            await Task.Delay(100);
        }
    }
}
