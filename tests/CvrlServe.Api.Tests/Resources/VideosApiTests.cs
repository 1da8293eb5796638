using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using CvrlServe.Api.Hosting;
using Microsoft.Extensions.DependencyInjection;

namespace CvrlServe.Api.Tests.Resources;

/// <summary>A service with the colour probe, a second client key, and a library whose uploads longer than 4 s become jobs.</summary>
public sealed class LibraryApi : IAsyncLifetime, IDisposable
{
    public const string OtherClientKey = "client-two-0123456789abcdef";

    /// <summary>One more client key per test that stores videos: entries are per key, so tests cannot see (or dedup against) each other's.</summary>
    public static string KeyOf(int test) => $"client-test-{test:D2}-0123456789abcdef";

    public ApiVideos Videos { get; } = new();

    public CvrlApiFactory App { get; } = new(new Dictionary<string, string?>
    {
        ["Cvrl:Keys:Clients:1"] = OtherClientKey,
        ["Cvrl:Keys:Clients:2"] = KeyOf(1),
        ["Cvrl:Keys:Clients:3"] = KeyOf(2),
        ["Cvrl:Keys:Clients:4"] = KeyOf(3),
        ["Cvrl:Keys:Clients:5"] = KeyOf(4),
        ["Cvrl:Keys:Clients:6"] = KeyOf(5),
        ["Cvrl:Keys:Clients:7"] = KeyOf(6),
        ["Cvrl:Keys:Clients:8"] = KeyOf(7),
        ["Cvrl:Keys:Clients:9"] = KeyOf(8),
        ["Cvrl:Keys:Clients:10"] = KeyOf(9),
        ["Cvrl:Library:JobAboveSeconds"] = "4",
        ["Cvrl:Library:SyncIntervalSeconds"] = "0.2",
    });

    public async Task InitializeAsync()
    {
        await App.StartedAsync();
        await ApiCalls.TrainColoursAsync(App, Videos);
    }

    public Task DisposeAsync() => Task.CompletedTask;

    public void Dispose()
    {
        App.Dispose();
        Videos.Dispose();
    }
}

public sealed class VideosApiTests(LibraryApi library) : IClassFixture<LibraryApi>
{
    private static readonly float[] TwoNumbers = [1f, 2f];

    private readonly CvrlApiFactory _app = library.App;
    private readonly ApiVideos _videos = library.Videos;

    [Fact]
    public async Task Add_NewThenSameAgain_201Then200SameEntryWithoutRunningTheEncoder()
    {
        using var client = _app.Client(LibraryApi.KeyOf(1));
        string tag = Tag();

        using var first = await AddAsync(client, "red-0.mp4", ("tags", tag));
        var created = await JsonAsync(first, HttpStatusCode.Created);
        long clips = EncodedClips();
        using var again = await AddAsync(client, "red-0.mp4", ("tags", "other"), ("name", "renamed"));
        var existing = await JsonAsync(again, HttpStatusCode.OK);

        Assert.Equal($"/v1/videos/{created.GetProperty("id").GetString()}", first.Headers.Location?.OriginalString);
        Assert.False(created.GetProperty("existing").GetBoolean());
        Assert.True(existing.GetProperty("existing").GetBoolean());
        Assert.Equal(created.GetProperty("id").GetString(), existing.GetProperty("id").GetString());
        Assert.Equal("red-0.mp4", existing.GetProperty("name").GetString());
        Assert.Equal([tag], existing.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.Equal(clips, EncodedClips());
        Assert.Equal(Sha256(_videos.Path("red-0.mp4")), created.GetProperty("sha256").GetString());
        Assert.True(created.GetProperty("clipCount").GetInt32() >= 1);
        Assert.Empty(Directory.GetFiles(_app.UploadsFolder));
    }

    [Fact]
    public async Task Get_WithEmbeddings_TheSameVectorsAsEmbeddingsApi()
    {
        using var client = _app.Client(LibraryApi.KeyOf(2));
        string id = await IdOfAsync(client, "blue-1.mp4");

        var entry = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos/{id}?embeddings=true", UriKind.Relative));
        var (modelId, embedding) = await ApiCalls.EmbedAsync(client, _videos.Path("blue-1.mp4"));

        Assert.Equal(modelId, entry.GetProperty("modelId").GetString());
        Assert.All(embedding.Zip(Floats(entry.GetProperty("embedding"))), p => Assert.Equal(p.First, p.Second, 5));
        var clips = entry.GetProperty("clips").EnumerateArray().ToArray();
        Assert.Equal(entry.GetProperty("clipCount").GetInt32(), clips.Length);
        Assert.All(clips, c => Assert.True(c.GetProperty("end").GetDouble() > c.GetProperty("start").GetDouble()));
        Assert.Equal(embedding.Length, clips[0].GetProperty("embedding").GetArrayLength());
    }

    [Fact]
    public async Task Owners_SameContent_SeparateEntriesNeitherSeesTheOthers_AdminSeesBoth()
    {
        using var alice = _app.Client(CvrlApiFactory.ClientKey);
        using var bob = _app.Client(LibraryApi.OtherClientKey);
        using var admin = _app.Client(CvrlApiFactory.AdminKey);
        string tag = Tag();

        var mine = await JsonAsync(await AddAsync(alice, "blue-2.mp4", ("tags", tag)), HttpStatusCode.Created);
        // Bob uploads the same bytes: he gets his own entry, and nothing says Alice has it.
        var his = await JsonAsync(await AddAsync(bob, "blue-2.mp4", ("tags", tag)), HttpStatusCode.Created);

        string aliceId = mine.GetProperty("id").GetString()!;
        string bobId = his.GetProperty("id").GetString()!;
        Assert.NotEqual(aliceId, bobId);
        Assert.False(his.GetProperty("existing").GetBoolean());
        await Problem.AssertAsync(await bob.GetAsync(new Uri($"/v1/videos/{aliceId}", UriKind.Relative)), HttpStatusCode.NotFound, "not-found");
        Assert.Equal([bobId], await ListIdsAsync(bob, $"tag={tag}"));
        Assert.Equal([aliceId], await ListIdsAsync(alice, $"tag={tag}"));
        Assert.Equal(new[] { aliceId, bobId }.Order(), (await ListIdsAsync(admin, $"tag={tag}")).Order());
        var search = await SearchAsync(bob, new { videoId = bobId, k = 100 });
        Assert.DoesNotContain(aliceId, search.GetProperty("hits").EnumerateArray().Select(h => h.GetProperty("videoId").GetString()));
        await Problem.AssertAsync(await bob.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { videoId = aliceId }), HttpStatusCode.NotFound, "not-found");
        await Problem.AssertAsync(await bob.PostAsync(new Uri($"/v1/videos/{aliceId}/classify?probe=colours", UriKind.Relative), null), HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task List_Pages_NewestFirstTotalsAndNextPage()
    {
        using var client = _app.Client(LibraryApi.KeyOf(3));
        string tag = Tag();
        var ids = new List<string>();
        foreach (string video in new[] { "red-1.mp4", "red-2.mp4", "blue-0.mp4" })
        {
            ids.Add(await IdOfAsync(client, video, ("tags", tag)));
        }

        var first = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos?tag={tag}&pageSize=2", UriKind.Relative));
        var second = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos?tag={tag}&pageSize=2&page=2", UriKind.Relative));

        Assert.Equal(3, first.GetProperty("total").GetInt64());
        Assert.Equal(2, first.GetProperty("nextPage").GetInt32());
        Assert.Equal(JsonValueKind.Null, second.GetProperty("nextPage").ValueKind);
        var listed = first.GetProperty("videos").EnumerateArray().Concat(second.GetProperty("videos").EnumerateArray()).Select(v => v.GetProperty("id").GetString()).ToArray();
        Assert.Equal(Enumerable.Reverse(ids), listed);
        await Problem.AssertAsync(await client.GetAsync(new Uri("/v1/videos?page=0", UriKind.Relative)), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.GetAsync(new Uri("/v1/videos?pageSize=1000", UriKind.Relative)), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.GetAsync(new Uri("/v1/videos?tag=%25%27", UriKind.Relative)), HttpStatusCode.BadRequest, "invalid-argument");
    }

    [Fact]
    public async Task ClassifyStored_SameLabelsAndProbabilitiesAsClassifyWithUpload_NothingDecoded()
    {
        using var client = _app.Client(LibraryApi.KeyOf(4));
        string id = await IdOfAsync(client, "red-2.mp4");
        using var direct = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-2.mp4"), ("probe", "colours"), ("all", "true"), ("timeline", "true"), ("thumbnails", "false")));
        var expected = await JsonAsync(direct, HttpStatusCode.OK);
        long clips = EncodedClips();

        using var stored = await client.PostAsync(new Uri($"/v1/videos/{id}/classify?probe=colours&all=true&timeline=true", UriKind.Relative), null);
        var actual = await JsonAsync(stored, HttpStatusCode.OK);

        Assert.Equal(clips, EncodedClips());
        Assert.False(actual.GetProperty("decoded").GetBoolean());
        Assert.Equal("red", actual.GetProperty("labels")[0].GetProperty("label").GetString());
        var want = expected.GetProperty("classes").EnumerateArray().ToDictionary(c => c.GetProperty("label").GetString()!, c => c.GetProperty("probability").GetDouble());
        var got = actual.GetProperty("classes").EnumerateArray().ToDictionary(c => c.GetProperty("label").GetString()!, c => c.GetProperty("probability").GetDouble());
        Assert.Equal(want.Keys.Order(), got.Keys.Order());
        Assert.All(want, w => Assert.Equal(w.Value, got[w.Key], 5));
        Assert.Equal(
            expected.GetProperty("timeline").EnumerateArray().Select(s => (s.GetProperty("label").GetString(), Math.Round(s.GetProperty("start").GetDouble(), 3), Math.Round(s.GetProperty("end").GetDouble(), 3))),
            actual.GetProperty("timeline").EnumerateArray().Select(s => (s.GetProperty("label").GetString(), Math.Round(s.GetProperty("start").GetDouble(), 3), Math.Round(s.GetProperty("end").GetDouble(), 3))));
        await Problem.AssertAsync(await client.PostAsync(new Uri($"/v1/videos/{id}/classify?probe=nope", UriKind.Relative), null), HttpStatusCode.NotFound, "not-found");
        await Problem.AssertAsync(await client.PostAsync(new Uri($"/v1/videos/{id}/classify", UriKind.Relative), null), HttpStatusCode.BadRequest, "invalid-argument");
    }

    [Fact]
    public async Task ClassifyBatch_EveryTaggedVideo_ItsColour()
    {
        using var client = _app.Client(LibraryApi.KeyOf(5));
        string tag = Tag();
        var expected = new Dictionary<string, string>
        {
            [await IdOfAsync(client, "red-0.mp4", ("tags", tag))] = "red",
            [await IdOfAsync(client, "blue-1.mp4", ("tags", tag))] = "blue",
        };
        await IdOfAsync(client, "red-1.mp4", ("tags", Tag()));

        using var response = await client.PostAsJsonAsync(new Uri("/v1/videos/classify", UriKind.Relative), new { probe = "colours", tag });
        var json = await JsonAsync(response, HttpStatusCode.OK);

        var got = json.GetProperty("videos").EnumerateArray().ToDictionary(v => v.GetProperty("videoId").GetString()!, v => v.GetProperty("labels")[0].GetProperty("label").GetString()!);
        Assert.Equal(expected.OrderBy(e => e.Key), got.OrderBy(e => e.Key));
        Assert.False(json.GetProperty("decoded").GetBoolean());
    }

    [Fact]
    public async Task Search_ByStoredVideo_ExactlyTheNaiveRanking_ClipScopeWithTimes_TagFilter()
    {
        using var client = _app.Client(CvrlApiFactory.AdminKey);
        string tag = Tag();
        var ids = new Dictionary<string, string>();
        foreach (string video in new[] { "red-0.mp4", "red-1.mp4", "red-2.mp4", "blue-0.mp4", "blue-1.mp4", "blue-2.mp4" })
        {
            ids[video] = await IdOfAsync(client, video, ("tags", tag));
        }

        // The reference: every tagged entry's stored vectors, ranked here by a plain double-precision dot product.
        var vectors = new Dictionary<string, (float[] Video, float[][] Clips)>();
        foreach (string id in ids.Values)
        {
            var entry = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos/{id}?embeddings=true", UriKind.Relative));
            vectors[id] = (Floats(entry.GetProperty("embedding")), entry.GetProperty("clips").EnumerateArray().Select(c => Floats(c.GetProperty("embedding"))).ToArray());
        }

        string query = ids["red-0.mp4"];
        var expected = vectors.Where(v => v.Key != query).Select(v => (Id: v.Key, Score: Dot(vectors[query].Video, v.Value.Video))).OrderByDescending(v => v.Score).Take(4).ToArray();
        var result = await SearchAsync(client, new { videoId = query, k = 4, tag });
        var hits = result.GetProperty("hits").EnumerateArray().ToArray();
        Assert.Equal(expected.Select(e => e.Id), hits.Select(h => h.GetProperty("videoId").GetString()));
        Assert.All(expected.Zip(hits), p => Assert.Equal(p.First.Score, p.Second.GetProperty("score").GetDouble(), 4));

        var clipQuery = vectors[ids["blue-0.mp4"]].Clips[^1];
        var expectedClips = vectors.SelectMany(v => v.Value.Clips.Select((c, i) => (Id: v.Key, Clip: i, Score: Dot(clipQuery, c)))).OrderByDescending(c => c.Score).Take(5).ToArray();
        var clipResult = await SearchAsync(client, new { embedding = clipQuery, modelId = result.GetProperty("modelId").GetString(), k = 5, scope = "clip", tag });
        var clipHits = clipResult.GetProperty("hits").EnumerateArray().ToArray();
        Assert.Equal(expectedClips.Select(c => (c.Id, c.Clip)), clipHits.Select(h => (h.GetProperty("videoId").GetString()!, h.GetProperty("clip").GetInt32())));
        Assert.All(clipHits, h => Assert.True(h.GetProperty("end").GetDouble() > h.GetProperty("start").GetDouble()));
        Assert.Equal(ids["blue-0.mp4"], clipHits[0].GetProperty("videoId").GetString());
        Assert.Equal(1.0, clipHits[0].GetProperty("score").GetDouble(), 4);

        var none = await SearchAsync(client, new { videoId = query, tag = Tag() });
        Assert.Empty(none.GetProperty("hits").EnumerateArray());
    }

    [Fact]
    public async Task Search_ByUploadedVideo_ItsStoredSelfFirst()
    {
        using var client = _app.Client(LibraryApi.KeyOf(6));
        string tag = Tag();
        string blue = await IdOfAsync(client, "blue-2.mp4", ("tags", tag));
        await IdOfAsync(client, "red-2.mp4", ("tags", tag));

        using var form = CvrlApiFactory.Form(_videos.Path("blue-2.mp4"), ("k", "2"), ("tag", tag));
        using var response = await client.PostAsync(new Uri("/v1/search", UriKind.Relative), form);
        var json = await JsonAsync(response, HttpStatusCode.OK);

        var hits = json.GetProperty("hits").EnumerateArray().ToArray();
        Assert.Equal(blue, hits[0].GetProperty("videoId").GetString());
        Assert.Equal(1.0, hits[0].GetProperty("score").GetDouble(), 4);
        Assert.True(hits[1].GetProperty("score").GetDouble() < hits[0].GetProperty("score").GetDouble());
    }

    [Fact]
    public async Task Search_BadQueries_ClearProblems()
    {
        using var client = _app.Client(LibraryApi.KeyOf(7));
        string id = await IdOfAsync(client, "red-0.mp4");
        string modelId = (await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos/{id}", UriKind.Relative))).GetProperty("modelId").GetString()!;

        await Problem.AssertAsync(await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { k = 3 }), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { videoId = id, k = 0 }), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { videoId = id, scope = "frame" }), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { embedding = TwoNumbers, modelId }), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), new { videoId = id, clip = 99 }), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsync(new Uri("/v1/search", UriKind.Relative), new StringContent("{not json", System.Text.Encoding.UTF8, "application/json")), HttpStatusCode.BadRequest, "invalid-argument");
        await Problem.AssertAsync(await client.PostAsync(new Uri("/v1/search", UriKind.Relative), new StringContent("videoId=x")), HttpStatusCode.UnsupportedMediaType, "unsupported-media");
        var unknownSpace = await SearchAsync(client, new { embedding = TwoNumbers, modelId = new string('f', 64) });
        Assert.Empty(unknownSpace.GetProperty("hits").EnumerateArray());
    }

    [Fact]
    public async Task Add_HostileNameAndTags_NameSanitizedBadTagsRefusedNothingStored()
    {
        using var client = _app.Client(LibraryApi.KeyOf(8));
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(await File.ReadAllBytesAsync(_videos.Path("blue-0.mp4")));
        form.Add(file, "file", "../../etc/\u202Egnp.exe\u0000\u0007 holiday.mp4");
        using var response = await client.PostAsync(new Uri("/v1/videos", UriKind.Relative), form);
        var json = await JsonAsync(response, response.StatusCode == HttpStatusCode.OK ? HttpStatusCode.OK : HttpStatusCode.Created);
        Assert.Equal("gnp.exe holiday.mp4", json.GetProperty("name").GetString());

        foreach (string tags in new[] { "a b", "x,%", string.Join(',', Enumerable.Range(0, 17).Select(i => $"t{i}")), new string('t', 65) })
        {
            using var refused = await AddAsync(client, "red-2.mp4", ("tags", tags));
            await Problem.AssertAsync(refused, HttpStatusCode.BadRequest, "invalid-argument");
        }

        using var webhook = await AddAsync(client, "red-2.mp4", ("webhook", "https://hooks.example.com/x"));
        Assert.Contains("webhook", (await Problem.AssertAsync(webhook, HttpStatusCode.BadRequest, "invalid-argument")).GetRawText(), StringComparison.OrdinalIgnoreCase);
        Assert.Empty(Directory.GetFiles(_app.UploadsFolder));
    }

    [Fact]
    public async Task Delete_AdminOnly_ThenGoneFromGetAndSearch()
    {
        using var client = _app.Client(CvrlApiFactory.ClientKey);
        using var admin = _app.Client(CvrlApiFactory.AdminKey);
        string tag = Tag();
        string id = await IdOfAsync(client, "moving.mp4", ("tags", tag), ("async", "false"));
        string other = await IdOfAsync(client, "red-1.mp4", ("tags", tag));

        await Problem.AssertAsync(await client.DeleteAsync(new Uri($"/v1/videos/{id}", UriKind.Relative)), HttpStatusCode.Forbidden, "forbidden");
        using var deleted = await admin.DeleteAsync(new Uri($"/v1/videos/{id}", UriKind.Relative));

        Assert.Equal(HttpStatusCode.NoContent, deleted.StatusCode);
        await Problem.AssertAsync(await client.GetAsync(new Uri($"/v1/videos/{id}", UriKind.Relative)), HttpStatusCode.NotFound, "not-found");
        await Problem.AssertAsync(await admin.DeleteAsync(new Uri($"/v1/videos/{id}", UriKind.Relative)), HttpStatusCode.NotFound, "not-found");
        var search = await SearchAsync(client, new { videoId = other, tag, k = 10 });
        Assert.DoesNotContain(id, search.GetProperty("hits").EnumerateArray().Select(h => h.GetProperty("videoId").GetString()));
    }

    [Fact]
    public async Task Add_LongVideo_AJobWhoseResultIsTheEntry()
    {
        using var client = _app.Client(LibraryApi.KeyOf(9));
        string tag = Tag();

        using var accepted = await AddAsync(client, "moving.mp4", ("tags", tag));
        var job = await JsonAsync(accepted, HttpStatusCode.Accepted);
        Assert.Equal("video-ingest", job.GetProperty("kind").GetString());
        Assert.Equal($"/v1/jobs/{job.GetProperty("id").GetString()}", accepted.Headers.Location?.OriginalString);
        var done = await WaitForJobAsync(client, job.GetProperty("id").GetString()!);

        Assert.Equal("succeeded", done.GetProperty("state").GetString());
        string id = done.GetProperty("result").GetProperty("id").GetString()!;
        var entry = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos/{id}", UriKind.Relative));
        Assert.Equal([tag], entry.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        Assert.True(entry.GetProperty("durationSeconds").GetDouble() > 4);
        Assert.Empty(Directory.GetFiles(Path.Combine(_app.DataFolder, "library-jobs")));
        Assert.DoesNotContain(_app.Root, done.GetRawText(), StringComparison.Ordinal);
    }

    internal static async Task<JsonElement> WaitForJobAsync(HttpClient client, string jobId)
    {
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        while (true)
        {
            var job = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/jobs/{jobId}", UriKind.Relative), timeout.Token);
            if (job.GetProperty("state").GetString() is "succeeded" or "failed")
            {
                return job;
            }

            await Task.Delay(100, timeout.Token);
        }
    }

    private long EncodedClips()
    {
        using var lease = _app.Services.GetRequiredService<ModelRegistryService>().Registry.Acquire(CvrlApiFactory.Model);
        return lease.Model.Batcher.Statistics.Clips;
    }

    private Task<HttpResponseMessage> AddAsync(HttpClient client, string video, params (string Name, string Value)[] fields) =>
        client.PostAsync(new Uri("/v1/videos", UriKind.Relative), CvrlApiFactory.Form(_videos.Path(video), fields));

    private async Task<string> IdOfAsync(HttpClient client, string video, params (string Name, string Value)[] fields)
    {
        using var response = await AddAsync(client, video, fields);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode is HttpStatusCode.Created or HttpStatusCode.OK or HttpStatusCode.Accepted, body);
        var json = JsonDocument.Parse(body).RootElement;
        return response.StatusCode == HttpStatusCode.Accepted
            ? (await WaitForJobAsync(client, json.GetProperty("id").GetString()!)).GetProperty("result").GetProperty("id").GetString()!
            : json.GetProperty("id").GetString()!;
    }

    private static async Task<string[]> ListIdsAsync(HttpClient client, string query)
    {
        var page = await client.GetFromJsonAsync<JsonElement>(new Uri($"/v1/videos?{query}", UriKind.Relative));
        return page.GetProperty("videos").EnumerateArray().Select(v => v.GetProperty("id").GetString()!).ToArray();
    }

    private static async Task<JsonElement> SearchAsync(HttpClient client, object request)
    {
        using var response = await client.PostAsJsonAsync(new Uri("/v1/search", UriKind.Relative), request);
        return await JsonAsync(response, HttpStatusCode.OK);
    }

    private static async Task<JsonElement> JsonAsync(HttpResponseMessage response, HttpStatusCode status)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    private static string Tag() => "t" + Guid.NewGuid().ToString("N")[..12];

    private static float[] Floats(JsonElement array) => array.EnumerateArray().Select(v => v.GetSingle()).ToArray();

    private static double Dot(float[] a, float[] b) => a.Zip(b).Sum(p => (double)p.First * p.Second);

    private static string Sha256(string path) => Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(File.ReadAllBytes(path)));
}
