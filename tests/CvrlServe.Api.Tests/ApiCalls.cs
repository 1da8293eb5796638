using System.Net;
using System.Net.Http.Json;
using System.Text.Json;

namespace CvrlServe.Api.Tests;

/// <summary>Calls several tests make: embed a file, train the colour probe through the API.</summary>
internal static class ApiCalls
{
    public static async Task<(string ModelId, float[] Embedding)> EmbedAsync(HttpClient client, string path, string? model = null)
    {
        using var form = model is null ? CvrlApiFactory.Form(path) : CvrlApiFactory.Form(path, ("model", model));
        using var response = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), form);
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, body);
        var json = JsonDocument.Parse(body).RootElement;
        return (json.GetProperty("modelId").GetString()!, json.GetProperty("embedding").EnumerateArray().Select(v => v.GetSingle()).ToArray());
    }

    /// <summary>Trains probe <paramref name="name"/> (red vs blue) from the API's own embeddings with the admin key.</summary>
    public static async Task<JsonElement> TrainColoursAsync(CvrlApiFactory app, ApiVideos videos, string name = "colours")
    {
        using var client = app.Client();
        var examples = new List<object>();
        string modelId = "";
        foreach (string label in new[] { "red", "blue" })
        {
            for (int i = 0; i < 3; i++)
            {
                var (id, embedding) = await EmbedAsync(client, videos.Path($"{label}-{i}.mp4"));
                modelId = id;
                examples.Add(new { label, embedding });
            }
        }

        using var admin = app.Client(CvrlApiFactory.AdminKey);
        using var response = await admin.PostAsJsonAsync(new Uri("/v1/probes", UriKind.Relative), new { name, model = CvrlApiFactory.Model, modelId, examples });
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.Created, body);
        return JsonDocument.Parse(body).RootElement.Clone();
    }

    /// <summary>GET v1/models (relative to the client's base address), with an X-Forwarded-For header when given.</summary>
    public static async Task<HttpResponseMessage> ModelsAsync(HttpClient client, string? forwardedFor)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri("v1/models", UriKind.Relative));
        if (forwardedFor is not null)
        {
            request.Headers.Add("X-Forwarded-For", forwardedFor);
        }

        return await client.SendAsync(request);
    }

    public static async Task<HttpStatusCode> ModelsStatusAsync(HttpClient client, string? forwardedFor)
    {
        using var response = await ModelsAsync(client, forwardedFor);
        return response.StatusCode;
    }
}
