using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// What the end-to-end tests share: the ffmpeg-made videos and one running server (a
/// <see cref="KestrelServer"/> with default settings), both made once for the collection and removed after
/// it, and the red/blue embeddings a probe is trained on, fetched once from the server.
/// </summary>
public sealed class EndToEndServer : IAsyncLifetime
{
    private readonly Lazy<Task<(string ModelId, object[] Examples)>> _examples;
    private readonly Lazy<Task<string>> _sharedProbe;

    public EndToEndServer()
    {
        _examples = new(FetchExamplesAsync);
        _sharedProbe = new(async () =>
        {
            await TrainColorProbeAsync("colors");
            return "colors";
        });
    }

    public ApiVideos Videos { get; private set; } = null!;

    public KestrelServer Server { get; private set; } = null!;

    public async Task InitializeAsync()
    {
        var videos = Task.Run(() => new ApiVideos());
        var server = KestrelServer.StartAsync();
        try
        {
            await Task.WhenAll(videos, server);
        }
        catch
        {
            if (videos.IsCompletedSuccessfully)
            {
                (await videos).Dispose();
            }

            if (server.IsCompletedSuccessfully)
            {
                await (await server).DisposeAsync();
            }

            throw;
        }

        Videos = await videos;
        Server = await server;
    }

    public async Task DisposeAsync()
    {
        try
        {
            if (Server is not null)
            {
                await Server.DisposeAsync();
            }
        }
        finally
        {
            Videos?.Dispose();
        }
    }

    /// <summary>POSTs <paramref name="video"/> to /v1/embeddings; asserts 200 and returns the body.</summary>
    public static async Task<JsonElement> EmbedAsync(HttpClient client, string video, params (string Name, string Value)[] fields)
    {
        using var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(video, fields));
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"embedding {Path.GetFileName(video)}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>
    /// Trains probe <paramref name="name"/> on the embeddings of red-0..2 and blue-0..2 (labels "red" and
    /// "blue") through <c>POST /v1/probes</c> with the admin key; asserts 201 and returns the body.
    /// </summary>
    public async Task<JsonElement> TrainColorProbeAsync(string name)
    {
        var (modelId, examples) = await _examples.Value;
        using var admin = Server.Client(KestrelServer.AdminKey);
        using var response = await admin.PostAsJsonAsync(new Uri("v1/probes", UriKind.Relative), new { name, model = KestrelServer.Model, modelId, examples });
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, $"training probe {name}: {(int)response.StatusCode} {body}");
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>The name of a red/blue probe on <see cref="Server"/>, trained on the first call.</summary>
    public Task<string> SharedProbeAsync() => _sharedProbe.Value;

    private async Task<(string ModelId, object[] Examples)> FetchExamplesAsync()
    {
        using var client = Server.Client();
        var examples = new List<object>();
        string? modelId = null;
        foreach (string label in new[] { "red", "blue" })
        {
            for (int i = 0; i < 3; i++)
            {
                var json = await EmbedAsync(client, Videos.Path($"{label}-{i}.mp4"));
                modelId = json.GetProperty("modelId").GetString();
                examples.Add(new { label, embedding = json.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray() });
            }
        }

        return (modelId!, examples.ToArray());
    }
}

[CollectionDefinition(Name)]
public sealed class SharedEndToEndServer : ICollectionFixture<EndToEndServer>
{
    public const string Name = "end-to-end";
}
