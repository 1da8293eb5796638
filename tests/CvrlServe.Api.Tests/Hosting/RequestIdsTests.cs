using System.Net;

namespace CvrlServe.Api.Tests.Hosting;

/// <summary>The request id: a gateway's or client's X-Request-Id adopted when it is a safe token, else a fresh one.</summary>
public sealed class RequestIdsTests
{
    [Theory]
    [InlineData("client-42")]
    [InlineData("a.b_c:d-E")]
    [InlineData("0123456789abcdef0123456789abcdef")]
    public async Task RequestId_TokenSent_AdoptedEchoedAndInProblems(string id)
    {
        await using var app = new CvrlApiFactory();
        using var client = app.Client();

        using var models = await SendAsync(client, "/v1/models", id);
        using var missing = await SendAsync(client, "/v1/jobs/nope", id);

        Assert.Equal(HttpStatusCode.OK, models.StatusCode);
        Assert.Equal(id, models.Headers.GetValues("X-Request-Id").Single());
        Assert.Equal(id, missing.Headers.GetValues("X-Request-Id").Single());
        var problem = await Problem.AssertAsync(missing, HttpStatusCode.NotFound, "not-found");
        Assert.Equal(id, problem.GetProperty("requestId").GetString());
    }

    public static TheoryData<string[]> Hostile() => new()
    {
        { ["abc\r\nX-Injected: 1"] },
        { [new string('a', 10 * 1024)] },
        { [new string('a', 129)] },
        { ["with space"] },
        { ["quote\"d"] },
        { ["ünïcode"] },
        { ["<script>"] },
        { ["one", "two"] },
    };

    [Theory]
    [MemberData(nameof(Hostile))]
    public async Task RequestId_AnythingElse_IgnoredAndAFreshOneMade(string[] sent)
    {
        await using var app = new CvrlApiFactory();
        using var client = app.Client();

        using var response = await SendAsync(client, "/v1/jobs/nope", sent);

        string id = response.Headers.GetValues("X-Request-Id").Single();
        Assert.Matches("^[0-9a-f]{32}$", id);
        Assert.Equal(id, (await Problem.AssertAsync(response, HttpStatusCode.NotFound, "not-found")).GetProperty("requestId").GetString());
        Assert.False(response.Headers.Contains("X-Injected"));
    }

    [Theory]
    [MemberData(nameof(Hostile))]
    public void IsValid_HostileValues_Refused(string[] sent) => Assert.All(sent.Where(s => s is not "one" and not "two"), s => Assert.False(CvrlServe.Api.Hosting.RequestIds.IsValid(s)));

    [Fact]
    public async Task RequestId_NoneSent_EveryResponseGetsItsOwn()
    {
        await using var app = new CvrlApiFactory();
        using var client = app.Client();

        using var first = await client.GetAsync(new Uri("/health/live", UriKind.Relative));
        using var second = await client.GetAsync(new Uri("/health/live", UriKind.Relative));

        string[] ids = [first.Headers.GetValues("X-Request-Id").Single(), second.Headers.GetValues("X-Request-Id").Single()];
        Assert.All(ids, id => Assert.Matches("^[0-9a-f]{32}$", id));
        Assert.NotEqual(ids[0], ids[1]);
    }

    private static Task<HttpResponseMessage> SendAsync(HttpClient client, string path, params string[] ids)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, new Uri(path, UriKind.Relative));
        foreach (string id in ids)
        {
            // Without validation, as a raw client could send it; the in-memory server takes it as written.
            request.Headers.TryAddWithoutValidation("X-Request-Id", id);
        }

        return client.SendAsync(request);
    }
}
