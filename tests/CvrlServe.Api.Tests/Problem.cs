using System.Net;
using System.Text.Json;

namespace CvrlServe.Api.Tests;

/// <summary>Reads and checks problem+json answers.</summary>
internal static class Problem
{
    /// <summary>Asserts the status, the problem+json media type and the type slug; returns the body.</summary>
    public static async Task<JsonElement> AssertAsync(HttpResponseMessage response, HttpStatusCode status, string slug)
    {
        string body = await response.Content.ReadAsStringAsync();
        Assert.True(status == response.StatusCode, $"expected {(int)status}, got {(int)response.StatusCode}: {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        var json = JsonDocument.Parse(body).RootElement.Clone();
        Assert.Equal("urn:cvrlserve:problem:" + slug, json.GetProperty("type").GetString());
        Assert.Equal((int)status, json.GetProperty("status").GetInt32());
        // Nothing about the server's insides: no paths, no stack, no ffmpeg words.
        Assert.DoesNotContain("/tmp", body, StringComparison.Ordinal);
        Assert.DoesNotContain("cvrl-api-", body, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", body, StringComparison.Ordinal);
        Assert.DoesNotContain("ffmpeg", body, StringComparison.OrdinalIgnoreCase);
        return json;
    }
}
