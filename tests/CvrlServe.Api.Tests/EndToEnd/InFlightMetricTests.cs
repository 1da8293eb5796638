using System.Net;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// <c>cvrlserve_requests_in_flight</c>, the series the Kubernetes HorizontalPodAutoscaler scales on
/// (deploy/k8s), read from a real server process's /metrics while an upload is held mid-body.
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed class InFlightMetricTests(EndToEndServer fixture)
{
    public const string Series = "cvrlserve_requests_in_flight";
    private static readonly TimeSpan Wait = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task RequestsInFlight_AnUploadHeldMidBody_CountsOneUntilItIsAnswered()
    {
        using var client = fixture.Server.Client();
        await WaitForAsync(client, 0);
        using var form = CvrlApiFactory.Form(fixture.Videos.Path("moving.mp4"));
        using var content = await HeldBackContent.FromAsync(form, tailBytes: 4096);

        var request = client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), content);
        await content.HeadSent;
        await WaitForAsync(client, 1);
        Assert.False(request.IsCompleted);
        content.Release();
        using var response = await request;

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await WaitForAsync(client, 0);
    }

    private static async Task WaitForAsync(HttpClient client, double expected)
    {
        var deadline = DateTime.UtcNow + Wait;
        double value;
        do
        {
            value = MetricsText.Value(await client.GetStringAsync(new Uri("metrics", UriKind.Relative)), Series);
            if (value == expected)
            {
                return;
            }

            await Task.Delay(50);
        }
        while (DateTime.UtcNow < deadline);

        Assert.Fail($"{Series} stayed at {value}, not {expected}, for {Wait.TotalSeconds} s");
    }
}
