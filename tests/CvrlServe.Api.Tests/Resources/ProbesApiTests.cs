using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace CvrlServe.Api.Tests.Resources;

[Collection(SharedApiVideos.Name)]
public sealed class ProbesApiTests(ApiVideos videos)
{
    [Fact]
    public async Task Train_Json_201AndSavedInTheDataFolder_ListedReadableAndDeletable()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        var created = await ApiCalls.TrainColoursAsync(app, videos, "colours");
        Assert.Equal(["blue", "red"], created.GetProperty("probe").GetProperty("classes").EnumerateArray().Select(c => c.GetString()).Order());
        Assert.Equal(6, created.GetProperty("probe").GetProperty("trainingExamples").GetInt32());
        // Runtime probes live in the data folder; the models folder (read-only in a container) is untouched.
        Assert.True(File.Exists(Path.Combine(app.DataFolder, "probes", CvrlApiFactory.Model, "probes", "colours.zip")));
        Assert.False(Directory.Exists(Path.Combine(app.ModelsFolder, CvrlApiFactory.Model, "probes")));

        using var client = app.Client();
        var models = await client.GetFromJsonAsync<JsonElement>(new Uri("/v1/models", UriKind.Relative));
        var tiny = models.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("name").GetString() == CvrlApiFactory.Model);
        Assert.True(tiny.GetProperty("ready").GetBoolean());
        Assert.Equal("CPUExecutionProvider", tiny.GetProperty("provider").GetString());
        var probe = tiny.GetProperty("probes").EnumerateArray().Single();
        Assert.Equal("colours", probe.GetProperty("name").GetString());
        Assert.False(probe.GetProperty("readOnly").GetBoolean());

        using var get = await client.GetAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/colours", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);

        using var admin = app.Client(CvrlApiFactory.AdminKey);
        using var delete = await admin.DeleteAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/colours", UriKind.Relative));
        Assert.Equal(HttpStatusCode.NoContent, delete.StatusCode);
        using var gone = await client.GetAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/colours", UriKind.Relative));
        await Problem.AssertAsync(gone, HttpStatusCode.NotFound, "not-found");
        using var again = await admin.DeleteAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/colours", UriKind.Relative));
        await Problem.AssertAsync(again, HttpStatusCode.NotFound, "not-found");
    }

    [Fact]
    public async Task ProbeShippedWithTheModel_FoundButReadOnly_409OnDeleteAndOnReplace()
    {
        await using var source = new CvrlApiFactory();
        await source.StartedAsync();
        await ApiCalls.TrainColoursAsync(source, videos, "bundled");
        string trained = Path.Combine(source.DataFolder, "probes", CvrlApiFactory.Model, "probes");

        // The same probe files placed beside the model, as an image would ship them.
        await using var app = new CvrlApiFactory(prepareModels: models => CvrlApiFactory.CopyModel(trained, Path.Combine(models, CvrlApiFactory.Model, "probes")));
        await app.StartedAsync();
        using var client = app.Client();
        using var get = await client.GetAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/bundled", UriKind.Relative));
        var json = await get.Content.ReadFromJsonAsync<JsonElement>();
        Assert.Equal(HttpStatusCode.OK, get.StatusCode);
        Assert.True(json.GetProperty("probe").GetProperty("readOnly").GetBoolean());

        using var admin = app.Client(CvrlApiFactory.AdminKey);
        using var delete = await admin.DeleteAsync(new Uri($"/v1/probes/{CvrlApiFactory.Model}/bundled", UriKind.Relative));
        await Problem.AssertAsync(delete, HttpStatusCode.Conflict, "conflict");
        var (modelId, embedding) = await ApiCalls.EmbedAsync(client, videos.Path("red-0.mp4"));
        using var replace = await admin.PostAsJsonAsync(new Uri("/v1/probes", UriKind.Relative), new
        {
            name = "bundled",
            modelId,
            examples = new[] { new { label = "a", embedding }, new { label = "b", embedding } },
        });
        await Problem.AssertAsync(replace, HttpStatusCode.Conflict, "conflict");
        Assert.True(File.Exists(Path.Combine(app.ModelsFolder, CvrlApiFactory.Model, "probes", "bundled.zip")));
    }

    [Fact]
    public async Task DamagedProbeFile_500ProbeDamaged_NotAVideoError()
    {
        await using var app = new CvrlApiFactory(prepareModels: models =>
        {
            Directory.CreateDirectory(Path.Combine(models, CvrlApiFactory.Model, "probes"));
            File.WriteAllText(Path.Combine(models, CvrlApiFactory.Model, "probes", "bad.zip"), "garbage");
        });
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(new Uri("/v1/classify", UriKind.Relative), CvrlApiFactory.Form(videos.Path("red-0.mp4"), ("probe", "bad")));
        var problem = await Problem.AssertAsync(response, HttpStatusCode.InternalServerError, "probe-damaged");
        Assert.Contains($"model '{CvrlApiFactory.Model}'", problem.GetProperty("detail").GetString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Train_BadRequests_400NamingTheField_NothingSaved()
    {
        await using var app = new CvrlApiFactory();
        await app.StartedAsync();
        using var client = app.Client();
        var (modelId, embedding) = await ApiCalls.EmbedAsync(client, videos.Path("red-0.mp4"));
        using var admin = app.Client(CvrlApiFactory.AdminKey);
        var cases = new (object Body, string Field)[]
        {
            (new { name = "p", modelId = new string('0', 64), examples = new[] { new { label = "a", embedding }, new { label = "b", embedding } } }, "modelId"),
            (new { name = "p", modelId, examples = new[] { new { label = "a", embedding }, new { label = "a", embedding } } }, "examples"),
            (new { name = "p", modelId, examples = new[] { new { label = "a", embedding }, new { label = "b", embedding = embedding[..3] } } }, "examples[1].embedding"),
            (new { name = "p", modelId, examples = new[] { new { label = "a", embedding } } }, "examples"),
            (new { name = "p", modelId, examples = new[] { new { label = "", embedding }, new { label = "b", embedding } } }, "examples[0].label"),
        };
        foreach (var (body, field) in cases)
        {
            using var response = await admin.PostAsJsonAsync(new Uri("/v1/probes", UriKind.Relative), body);
            Assert.Equal(field, (await Problem.AssertAsync(response, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
        }

        using var badName = await admin.PostAsJsonAsync(new Uri("/v1/probes", UriKind.Relative), new { name = "../x", modelId, examples = new[] { new { label = "a", embedding }, new { label = "b", embedding } } });
        await Problem.AssertAsync(badName, HttpStatusCode.BadRequest, "invalid-argument");
        using var malformed = await admin.PostAsync(new Uri("/v1/probes", UriKind.Relative), new StringContent("{ not json", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal("$", (await Problem.AssertAsync(malformed, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
        using var wrongType = await admin.PostAsync(new Uri("/v1/probes", UriKind.Relative), new StringContent("{\"name\": \"p\", \"modelId\": \"x\", \"examples\": [{\"label\": \"a\", \"embedding\": \"abc\"}]}", System.Text.Encoding.UTF8, "application/json"));
        Assert.Equal("$.examples[0].embedding", (await Problem.AssertAsync(wrongType, HttpStatusCode.BadRequest, "invalid-argument")).GetProperty("field").GetString());
        Assert.False(Directory.Exists(Path.Combine(app.DataFolder, "probes", CvrlApiFactory.Model, "probes")));
    }
}
