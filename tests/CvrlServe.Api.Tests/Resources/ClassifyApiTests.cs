using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using SixLabors.ImageSharp;

namespace CvrlServe.Api.Tests.Resources;

/// <summary>One service with the colour probe trained through the API, shared by the tests of a class.</summary>
public sealed class TrainedApi : IAsyncLifetime, IDisposable
{
    public ApiVideos Videos { get; } = new();

    public CvrlApiFactory App { get; } = new();

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

public sealed class ClassifyApiTests(TrainedApi trained) : IClassFixture<TrainedApi>
{
    private readonly CvrlApiFactory _app = trained.App;
    private readonly ApiVideos _videos = trained.Videos;

    [Theory]
    [InlineData("red-1.mp4", "red")]
    [InlineData("blue-2.mp4", "blue")]
    public async Task Classify_ColourVideo_ItsColourOnTop_ProbabilitiesOfEveryClassSumToOne(string name, string expected)
    {
        using var client = _app.Client();
        using var response = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative),
            CvrlApiFactory.Form(_videos.Path(name), ("probe", "colours"), ("all", "true"), ("topK", "1")));
        var json = await OkJsonAsync(response);
        var labels = json.GetProperty("labels").EnumerateArray().ToArray();
        Assert.Single(labels);
        Assert.Equal(expected, labels[0].GetProperty("label").GetString());
        var all = json.GetProperty("classes").EnumerateArray().ToArray();
        Assert.Equal(["red", "blue"], all.Select(c => c.GetProperty("label").GetString()).Order().Reverse());
        Assert.Equal(1.0, all.Sum(c => c.GetProperty("probability").GetDouble()), 4);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("timeline").ValueKind);
        Assert.Empty(Directory.GetFiles(_app.UploadsFolder));
    }

    [Fact]
    public async Task Classify_Timeline_SegmentsCoverTheClipsInOrderWithJpegThumbnails_OrNoneWhenTurnedOff()
    {
        using var client = _app.Client();
        using var response = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative),
            CvrlApiFactory.Form(_videos.Path("moving.mp4"), ("probe", "colours"), ("timeline", "true")));
        var json = await OkJsonAsync(response);
        var segments = json.GetProperty("timeline").EnumerateArray().ToArray();
        Assert.NotEmpty(segments);
        double previousEnd = 0;
        foreach (var segment in segments)
        {
            double start = segment.GetProperty("start").GetDouble(), end = segment.GetProperty("end").GetDouble();
            Assert.True(start >= previousEnd - 1e-9 && end > start, $"segment [{start}, {end}] after {previousEnd}");
            previousEnd = end;
            var thumbnail = segment.GetProperty("thumbnail");
            byte[] jpeg = Convert.FromBase64String(thumbnail.GetProperty("data").GetString()!);
            using var image = Image.Load(jpeg); // our own output, decoded in the test only
            Assert.Equal((thumbnail.GetProperty("width").GetInt32(), thumbnail.GetProperty("height").GetInt32()), (image.Width, image.Height));
            Assert.Equal(160, Math.Max(image.Width, image.Height)); // the default long side; moving.mp4 is 96×72
        }

        using var off = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative),
            CvrlApiFactory.Form(_videos.Path("moving.mp4"), ("probe", "colours"), ("timeline", "true"), ("thumbnails", "false")));
        var offJson = await OkJsonAsync(off);
        Assert.All(offJson.GetProperty("timeline").EnumerateArray(), s => Assert.Equal(JsonValueKind.Null, s.GetProperty("thumbnail").ValueKind));
        Assert.Equal(0, _app.Services.GetReader().MemoryBudget.InUseBytes);
    }

    [Fact]
    public async Task ClassifyEmbedding_SameModelId_SameTopLabel_OtherModelIdRefusedNamingIt()
    {
        using var client = _app.Client();
        var (modelId, embedding) = await ApiCalls.EmbedAsync(client, _videos.Path("blue-0.mp4"));
        using var ok = await client.PostAsJsonAsync(new Uri("/v1/classify/embedding", UriKind.Relative), new { probe = "colours", modelId, embedding });
        var json = await OkJsonAsync(ok);
        Assert.Equal("blue", json.GetProperty("labels")[0].GetProperty("label").GetString());
        Assert.Equal(modelId, json.GetProperty("modelId").GetString());

        string other = new('0', 64);
        using var refused = await client.PostAsJsonAsync(new Uri("/v1/classify/embedding", UriKind.Relative), new { probe = "colours", modelId = other, embedding });
        var problem = await Problem.AssertAsync(refused, HttpStatusCode.BadRequest, "invalid-argument");
        Assert.Equal("modelId", problem.GetProperty("field").GetString());

        using var shortVector = await client.PostAsJsonAsync(new Uri("/v1/classify/embedding", UriKind.Relative), new { probe = "colours", modelId, embedding = embedding[..10] });
        Assert.Equal("embedding", (await Problem.AssertAsync(shortVector, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
    }

    [Fact]
    public async Task Classify_MissingOrUnknownProbe_400And404()
    {
        using var client = _app.Client();
        using var missing = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-0.mp4")));
        Assert.Equal("probe", (await Problem.AssertAsync(missing, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
        using var unknown = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-0.mp4"), ("probe", "nope")));
        await Problem.AssertAsync(unknown, HttpStatusCode.NotFound, "not-found");
        using var hostile = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(_videos.Path("red-0.mp4"), ("probe", "../../etc/passwd")));
        await Problem.AssertAsync(hostile, HttpStatusCode.BadRequest, "invalid-argument");
        Assert.Empty(Directory.GetFiles(_app.UploadsFolder));
    }

    private static async Task<JsonElement> OkJsonAsync(HttpResponseMessage response)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }
}
