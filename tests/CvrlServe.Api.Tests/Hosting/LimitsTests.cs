using System.Diagnostics;
using System.Net;

namespace CvrlServe.Api.Tests.Hosting;

/// <summary>Every refusal the service documents, each provoked for real: size, duration, memory, load, deadline.</summary>
[Collection(SharedApiVideos.Name)]
public sealed class LimitsTests(ApiVideos videos)
{
    private static readonly Uri Embeddings = new("/v1/embeddings", UriKind.Relative);

    [Fact]
    public async Task Upload_OverTheSizeLimit_413NamingTheLimit_NothingKept()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:MaxUploadBytes"] = "4096" });
        Assert.True(new FileInfo(videos.Path("moving.mp4")).Length > 4096);
        using var client = app.Client();
        using var response = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("moving.mp4")));
        var problem = await Problem.AssertAsync(response, HttpStatusCode.RequestEntityTooLarge, "payload-too-large");
        Assert.Equal(4096, problem.GetProperty("maximum").GetInt64());
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    [Fact]
    public async Task Video_LongerThanAllowed_422NamingDuration()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:MaxDurationSeconds"] = "1" });
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("moving.mp4")));
        var problem = await Problem.AssertAsync(response, HttpStatusCode.UnprocessableEntity, "limit-exceeded");
        Assert.Equal("duration", problem.GetProperty("limit").GetString());
        Assert.Equal(1, problem.GetProperty("maximum").GetDouble());
        Assert.True(problem.GetProperty("actual").GetDouble() > 5);
    }

    [Fact]
    public async Task Request_NeedingMoreThanTheWholeBudget_422DecodedBytes_SmallerOneServed()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DecodedMemoryBudgetBytes"] = $"{1 << 20}" });
        await app.StartedAsync();
        using var client = app.Client();
        // 64 clips × 4 frames of 53×40 plus their crops and float tensors: about 5 MB, over the 1 MiB budget.
        using var big = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("moving.mp4"), ("clips", "64")));
        var problem = await Problem.AssertAsync(big, HttpStatusCode.UnprocessableEntity, "limit-exceeded");
        Assert.Equal("decodedBytes", problem.GetProperty("limit").GetString());
        using var small = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("moving.mp4")));
        Assert.Equal(HttpStatusCode.OK, small.StatusCode);
    }

    [Fact]
    public async Task Budget_Busy_NoRoomToWait_503WithRetryAfter_ThenServedOnceFree()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:MaxWaitingDecodes"] = "0" });
        await app.StartedAsync();
        using var client = app.Client();
        var reader = app.Services.GetReader();
        using (await reader.ReserveAsync(reader.MemoryBudget.CapacityBytes))
        {
            using var busy = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("red-0.mp4")));
            await Problem.AssertAsync(busy, HttpStatusCode.ServiceUnavailable, "overloaded");
            Assert.True(busy.Headers.RetryAfter?.Delta >= TimeSpan.FromSeconds(1));
        }

        using var free = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("red-0.mp4")));
        Assert.Equal(HttpStatusCode.OK, free.StatusCode);
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
    }

    [Fact]
    public async Task Request_PastItsDeadline_504_FfmpegKilled()
    {
        // ffprobe alone takes ~0.15 s to start here: a 50 ms deadline always fires inside Core's work.
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:RequestTimeoutSeconds"] = "0.05" });
        await app.StartedAsync();
        using var client = app.Client();
        using var response = await client.PostAsync(Embeddings, CvrlApiFactory.Form(videos.Path("moving.mp4"), ("clips", "16")));
        await Problem.AssertAsync(response, HttpStatusCode.GatewayTimeout, "timeout");
        var clock = Stopwatch.StartNew();
        while (FfmpegChildren().Count > 0 && clock.Elapsed < TimeSpan.FromSeconds(10))
        {
            await Task.Delay(20); // the kill is asynchronous; nothing announces the reaping
        }

        Assert.Empty(FfmpegChildren());
        Assert.Empty(Directory.GetFiles(app.UploadsFolder));
        Assert.Equal(0, app.Services.GetReader().MemoryBudget.InUseBytes);
    }

    [Theory]
    [InlineData("120")]
    [InlineData("600")]
    public async Task Shutdown_TheHostWaitsForTheLongestRequest(string requestTimeoutSeconds)
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:RequestTimeoutSeconds"] = requestTimeoutSeconds });
        await app.StartedAsync();

        var shutdown = Microsoft.Extensions.DependencyInjection.ServiceProviderServiceExtensions.GetRequiredService<Microsoft.Extensions.Options.IOptions<Microsoft.Extensions.Hosting.HostOptions>>(app.Services).Value.ShutdownTimeout;

        Assert.True(shutdown > TimeSpan.FromSeconds(double.Parse(requestTimeoutSeconds, System.Globalization.CultureInfo.InvariantCulture)), $"{shutdown}");
    }

    [Fact]
    public void Options_ModelsFolderMissingOrBadSettings_HostRefusesToStart()
    {
        foreach (var (key, value) in new[] { ("Cvrl:ModelsFolder", "/nonexistent/models"), ("Cvrl:MaxUploadBytes", "0"), ("Cvrl:KnownProxies:0", "not-an-ip"), ("Cvrl:Keys:Admin:0", "short") })
        {
            using var app = new CvrlApiFactory(new Dictionary<string, string?> { [key] = value });
            var error = Assert.ThrowsAny<Exception>(() => app.Server);
            Assert.Contains("Cvrl", error.ToString(), StringComparison.Ordinal);
        }
    }

    /// <summary>ffmpeg/ffprobe processes whose parent is this test process (from /proc/PID/stat).</summary>
    private static List<int> FfmpegChildren()
    {
        var children = new List<int>();
        foreach (string dir in Directory.EnumerateDirectories("/proc"))
        {
            try
            {
                string stat = File.ReadAllText(Path.Combine(dir, "stat"));
                int close = stat.LastIndexOf(')');
                string comm = stat[(stat.IndexOf('(') + 1)..close];
                string[] rest = stat[(close + 2)..].Split(' ');
                if (comm is "ffmpeg" or "ffprobe" && int.Parse(rest[1], System.Globalization.CultureInfo.InvariantCulture) == Environment.ProcessId)
                {
                    children.Add(int.Parse(Path.GetFileName(dir), System.Globalization.CultureInfo.InvariantCulture));
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or FormatException)
            {
                // Not a process, or it ended while being read.
            }
        }

        return children;
    }
}
