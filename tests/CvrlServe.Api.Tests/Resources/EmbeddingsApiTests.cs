using System.Net;
using System.Net.Http.Json;
using System.Security.Cryptography;
using System.Text.Json;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Tests.Resources;

[Collection(SharedApiVideos.Name)]
public sealed class EmbeddingsApiTests(ApiVideos videos)
{
    [Fact]
    public async Task Embed_Video_TheInProcessEmbeddingAndTheSha256OfTheBytes()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var client = app.Client();
        string path = videos.Path("moving.mp4");
        using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(path, ("perClip", "true")));
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;

        // The same file through Core in this process, on its own copy of the model.
        await using var model = await EncoderModel.LoadAsync(Path.Combine(app.ModelsFolder, CvrlApiFactory.Model), new EncoderSessionOptions { Provider = ProviderPreference.Cpu, WarmUp = false });
        using var reader = new VideoReader();
        var expected = await new VideoEmbedder(reader).EmbedAsync(model, path);

        var embedding = json.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray();
        Assert.Equal(expected.Embedding.Length, embedding.Length);
        Assert.True(expected.Embedding.Zip(embedding).Max(p => Math.Abs(p.First - p.Second)) < 1e-5, "the served embedding is not the pipeline's");
        Assert.Equal(model.Manifest.ModelId, json.GetProperty("modelId").GetString());
        Assert.Equal(CvrlApiFactory.Model, json.GetProperty("model").GetString());
        Assert.Equal(Convert.ToHexStringLower(SHA256.HashData(File.ReadAllBytes(path))), json.GetProperty("sha256").GetString());
        Assert.Equal(new FileInfo(path).Length, json.GetProperty("bytes").GetInt64());
        var clips = json.GetProperty("clips").EnumerateArray().ToArray();
        Assert.Equal(model.Manifest.View.Clips, clips.Length);
        for (int c = 0; c < clips.Length; c++)
        {
            var clip = expected.Clips[c];
            Assert.Equal(clip.Start.TotalSeconds, clips[c].GetProperty("start").GetDouble(), 6);
            Assert.Equal(clip.End.TotalSeconds, clips[c].GetProperty("end").GetDouble(), 6);
        }

        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    [Fact]
    public async Task Embed_ClipsAndPerClipOff_ThatManyClipsSampledAndNoneReturned()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("moving.mp4"), ("clips", "5"), ("perClip", "false")));
        var json = await response.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(JsonValueKind.Null, json.GetProperty("clips").ValueKind);
        Assert.Equal(64, json.GetProperty("embedding").GetArrayLength());
        using var perClip = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("moving.mp4"), ("clips", "5"), ("perClip", "true")));
        var clips = (await perClip.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("clips").EnumerateArray().ToArray();
        Assert.Equal(5, clips.Length);
        Assert.True(clips.Zip(clips.Skip(1)).All(p => p.First.GetProperty("start").GetDouble() < p.Second.GetProperty("start").GetDouble()), "clips spread in order");
    }

    [Theory]
    [InlineData("text.mp4", HttpStatusCode.UnsupportedMediaType, "unsupported-media")]
    [InlineData("truncated.mp4", HttpStatusCode.UnprocessableEntity, "undecodable")]
    public async Task Embed_BadVideo_ProblemAndNoUploadLeft(string name, HttpStatusCode status, string slug)
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path(name)));
        await Problem.AssertAsync(response, status, slug);
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    [Theory]
    [InlineData("clips", "0")]
    [InlineData("clips", "many")]
    [InlineData("perClip", "maybe")]
    public async Task Embed_InvalidOption_400NamingTheField(string field, string value)
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-0.mp4"), (field, value)));
        var problem = await Problem.AssertAsync(response, HttpStatusCode.BadRequest, "invalid-argument");
        Assert.Equal(field, problem.GetProperty("field").GetString());
    }

    [Fact]
    public async Task Embed_NotMultipartOrNoFile_415And400()
    {
        await using var app = new CvrlApiFactory();
        using var client = app.Client();
        using var json = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), JsonContent.Create(new { file = "x" }));
        await Problem.AssertAsync(json, HttpStatusCode.UnsupportedMediaType, "unsupported-media");
        using var form = new MultipartFormDataContent { { new StringContent("tiny"), "model" } };
        using var noFile = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), form);
        Assert.Equal("file", (await Problem.AssertAsync(noFile, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
    }

    [Fact]
    public async Task Embed_UnknownModel_404_BrokenModel_503NotReady()
    {
        await using var app = new CvrlApiFactory(prepareModels: models =>
        {
            Directory.CreateDirectory(Path.Combine(models, "broken"));
            File.WriteAllText(Path.Combine(models, "broken", EncoderManifest.FileName), "{ not json");
        });
        await app.StartedAsync();
        using var client = app.Client();
        using var unknown = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-0.mp4"), ("model", "nope")));
        await Problem.AssertAsync(unknown, HttpStatusCode.NotFound, "not-found");
        using var broken = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-0.mp4"), ("model", "broken")));
        await Problem.AssertAsync(broken, HttpStatusCode.ServiceUnavailable, "not-ready");
        Assert.True(broken.Headers.RetryAfter?.Delta > TimeSpan.Zero);
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }
}
