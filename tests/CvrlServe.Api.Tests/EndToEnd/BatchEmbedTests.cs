using System.Diagnostics;
using System.Net;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text.Json;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// <c>cvrl embed --server URL</c> against the real service: the CLI as its own process (the solution's build of
/// src/CvrlServe.Training; these tests do not reference it, so libtorch stays out of the API's tests), the
/// service as its own process, and for the retry tests a small front on loopback that answers 503 before it
/// forwards.
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed class BatchEmbedTests(EndToEndServer fixture) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-batch-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public async Task EmbedThroughServer_ThreeVideosTwoAtATime_TheServicesOwnEmbeddings()
    {
        string[] videos = ["red-0.mp4", "blue-0.mp4", "red-1.mp4"];
        string output = Path.Combine(_folder, "out.jsonl");

        var (code, _, stderr) = await RunCvrlAsync(["embed", "--server", fixture.Server.BaseAddress.ToString(), "--concurrency", "2", "--out", output, .. videos.Select(fixture.Videos.Path)]);

        Assert.True(code == 0, stderr);
        var lines = (await File.ReadAllLinesAsync(output)).Select(l => JsonDocument.Parse(l).RootElement).ToDictionary(l => l.GetProperty("video").GetString()!);
        Assert.Equal(videos.Length, lines.Count);
        using var client = fixture.Server.Client();
        foreach (string video in videos)
        {
            using var response = await client.PostAsync(new Uri("v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(fixture.Videos.Path(video)));
            var direct = JsonDocument.Parse(await response.Content.ReadAsStringAsync()).RootElement;
            var line = lines[fixture.Videos.Path(video)];
            Assert.Equal(direct.GetProperty("modelId").GetString(), line.GetProperty("modelId").GetString());
            Assert.Equal(direct.GetProperty("sha256").GetString(), line.GetProperty("sha256").GetString());
            float[] expected = direct.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            float[] actual = line.GetProperty("embedding").EnumerateArray().Select(e => e.GetSingle()).ToArray();
            Assert.Equal(expected.Length, actual.Length);
            Assert.All(expected.Zip(actual), p => Assert.True(Math.Abs(p.First - p.Second) < 1e-5, $"{p.First} vs {p.Second}"));
        }
    }

    [Fact]
    public async Task EmbedThroughServer_Library_StoresEachVideoOnceRefusalRecorded_ARerunSendsNothing()
    {
        string[] videos = ["red-2.mp4", "blue-2.mp4", "moving.mp4"];
        string notVideo = Path.Combine(_folder, "notes.mp4");
        await File.WriteAllTextAsync(notVideo, "this is text, not a video");
        string output = Path.Combine(_folder, "library.jsonl");
        string[] arguments = ["embed", "--library", "--tags", "batch,e2e", "--concurrency", "2", "--out", output, "--allow-refused", .. videos.Select(fixture.Videos.Path), notVideo];

        var (code, _, stderr) = await RunCvrlAsync([arguments[0], "--server", fixture.Server.BaseAddress.ToString(), .. arguments[1..]]);
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, _ => Fault.None);
        var (again, _, againErrors) = await RunCvrlAsync([arguments[0], "--server", front.BaseAddress.ToString(), .. arguments[1..]]);

        Assert.True(code == 0, stderr);
        var lines = (await File.ReadAllLinesAsync(output)).Select(l => JsonDocument.Parse(l).RootElement).ToArray();
        Assert.True(lines.Single(l => l.GetProperty("video").GetString() == notVideo).GetProperty("refused").GetBoolean());
        using var client = fixture.Server.Client();
        foreach (string video in videos)
        {
            var line = lines.Single(l => l.GetProperty("video").GetString() == fixture.Videos.Path(video));
            Assert.True(line.GetProperty("library").GetBoolean());
            var entry = await client.GetFromJsonAsync<JsonElement>(new Uri($"v1/videos/{line.GetProperty("id").GetString()}", UriKind.Relative));
            string sha = Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(await File.ReadAllBytesAsync(fixture.Videos.Path(video))));
            Assert.Equal((sha, sha), (line.GetProperty("sha256").GetString(), entry.GetProperty("sha256").GetString()));
            Assert.Equal(line.GetProperty("modelId").GetString(), entry.GetProperty("modelId").GetString());
            Assert.Equal(video, entry.GetProperty("name").GetString());
            Assert.Contains("e2e", entry.GetProperty("tags").EnumerateArray().Select(t => t.GetString()));
        }

        Assert.True(again == 0, againErrors);
        Assert.Equal(0, front.Posts);
        Assert.Contains("3 done before", againErrors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EmbedThroughServer_LibraryWhereEveryUploadIsAJob_JobsFollowedToTheirEntries()
    {
        await using var server = await KestrelServer.StartAsync(new Dictionary<string, string?> { ["Cvrl__Library__JobAboveSeconds"] = "0" });
        string output = Path.Combine(_folder, "jobs.jsonl");

        var (code, _, stderr) = await RunCvrlAsync("embed", "--server", server.BaseAddress.ToString(), "--library", "--out", output, fixture.Videos.Path("red-1.mp4"), fixture.Videos.Path("blue-1.mp4"));

        Assert.True(code == 0, stderr);
        using var client = server.Client();
        var jobs = await client.GetFromJsonAsync<JsonElement>(new Uri("v1/jobs", UriKind.Relative));
        Assert.Equal(2, jobs.GetProperty("jobs").EnumerateArray().Count(j => j.GetProperty("kind").GetString() == "video-ingest" && j.GetProperty("state").GetString() == "succeeded"));
        foreach (var line in (await File.ReadAllLinesAsync(output)).Select(l => JsonDocument.Parse(l).RootElement))
        {
            using var entry = await client.GetAsync(new Uri($"v1/videos/{line.GetProperty("id").GetString()}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.OK, entry.StatusCode);
        }
    }

    [Fact]
    public async Task EmbedThroughServer_TwoAnswers503WithRetryAfter_RetriedUntilEmbedded()
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, post => post <= 2 ? Fault.Unavailable : Fault.None);
        string output = Path.Combine(_folder, "retried.jsonl");

        var (code, _, stderr) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--out", output, fixture.Videos.Path("blue-1.mp4"));

        Assert.True(code == 0, stderr);
        Assert.Equal(3, front.Posts);
        Assert.Equal(2, CountOf(stderr, "retrying in 1 s"));
        Assert.True(JsonDocument.Parse((await File.ReadAllLinesAsync(output)).Single()).RootElement.TryGetProperty("embedding", out _));
    }

    [Fact]
    public async Task EmbedThroughServer_AVideoTheServiceRefuses_RecordedWithItsProblemAndSentOnce()
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, _ => Fault.None);
        string notVideo = Path.Combine(_folder, "notes.mp4");
        await File.WriteAllTextAsync(notVideo, "this is text, not a video");
        string output = Path.Combine(_folder, "refused.jsonl");

        var (code, _, _) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--out", output, notVideo);
        var (allowed, _, allowedErrors) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--out", output, "--allow-refused", notVideo);

        Assert.Equal(1, code);
        Assert.Equal(1, front.Posts);
        var refusal = JsonDocument.Parse((await File.ReadAllLinesAsync(output)).Single()).RootElement;
        Assert.True(refusal.GetProperty("refused").GetBoolean());
        var error = refusal.GetProperty("error");
        Assert.Equal(415, error.GetProperty("status").GetInt32());
        Assert.Equal("urn:cvrlserve:problem:unsupported-media", error.GetProperty("kind").GetString());
        // The rerun skips it (nothing sent) and, refusals allowed, the shard counts as finished.
        Assert.True(allowed == 0, allowedErrors);
        Assert.Equal(1, front.Posts);
        Assert.Contains("1 refused before", allowedErrors, StringComparison.Ordinal);
    }

    [Fact]
    public async Task EmbedThroughServer_RetriesExhausted_NotRecorded_TheNextRunEmbedsIt()
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, _ => Fault.Unavailable);
        string output = Path.Combine(_folder, "unfinished.jsonl");
        string video = fixture.Videos.Path("red-0.mp4");

        var (code, _, stderr) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--retries", "2", "--out", output, "--allow-refused", video);
        string afterFirst = await File.ReadAllTextAsync(output);
        var (again, _, againErrors) = await RunCvrlAsync("embed", "--server", fixture.Server.BaseAddress.ToString(), "--out", output, video);

        Assert.Equal(1, code); // unfinished is never allowed
        Assert.Equal(2, front.Posts);
        Assert.Contains("left for the next run", stderr, StringComparison.Ordinal);
        Assert.Equal("", afterFirst);
        Assert.True(again == 0, againErrors);
        Assert.True(JsonDocument.Parse((await File.ReadAllLinesAsync(output)).Single()).RootElement.TryGetProperty("embedding", out _));
    }

    [Theory]
    [InlineData(Fault.Html, "not JSON")]
    [InlineData(Fault.WrongDimension, "not an embedding")]
    [InlineData(Fault.GatewayTooLarge, "413")] // a proxy's limit, not the service's word on the video
    [InlineData(Fault.Redirect, "307")] // not followed: the key would go along
    public async Task EmbedThroughServer_AnAnswerThatSaysNothingFinal_NotRecorded_OthersGoThrough(Fault fault, string message)
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, post => post == 1 ? fault : Fault.None);
        string output = Path.Combine(_folder, "bad-answer.jsonl");

        var (code, _, stderr) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--out", output, fixture.Videos.Path("red-0.mp4"), fixture.Videos.Path("blue-0.mp4"));

        Assert.Equal(1, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Contains("1 embedded now, 0 refused now, 1 unfinished", stderr, StringComparison.Ordinal);
        var line = JsonDocument.Parse((await File.ReadAllLinesAsync(output)).Single()).RootElement;
        Assert.Equal(fixture.Videos.Path("blue-0.mp4"), line.GetProperty("video").GetString());
        Assert.DoesNotContain("   at ", stderr, StringComparison.Ordinal); // a message, not a stack trace
    }

    [Fact]
    public async Task EmbedThroughServer_AnswerCutOffMidBody_Retried()
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, post => post == 1 ? Fault.CutOff : Fault.None);
        string output = Path.Combine(_folder, "cut.jsonl");

        var (code, _, stderr) = await RunCvrlAsync("embed", "--server", front.BaseAddress.ToString(), "--out", output, fixture.Videos.Path("blue-1.mp4"));

        Assert.True(code == 0, stderr);
        Assert.Equal(2, front.Posts);
        Assert.True(JsonDocument.Parse((await File.ReadAllLinesAsync(output)).Single()).RootElement.TryGetProperty("embedding", out _));
    }

    [Theory]
    [InlineData(Fault.Unauthorized, "refuses the API key")]
    [InlineData(Fault.OtherModel, "model changed")]
    public async Task EmbedThroughServer_AKeyRefusedOrTheModelChanged_StopsTheRun_NothingRecorded(Fault fault, string message)
    {
        await using var front = FlakyFront.Start(fixture.Server.BaseAddress, _ => fault);
        string output = Path.Combine(_folder, "stopped.jsonl");
        string[] videos = ["red-0.mp4", "blue-0.mp4", "red-1.mp4", "blue-1.mp4"];

        var (code, _, stderr) = await RunCvrlAsync(["embed", "--server", front.BaseAddress.ToString(), "--out", output, "--allow-refused", .. videos.Select(fixture.Videos.Path)]);

        Assert.Equal(1, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
        Assert.Equal(1, front.Posts); // one at a time: the first answer stops the run
        Assert.Equal("", await File.ReadAllTextAsync(output));
    }

    private static int CountOf(string text, string fragment)
    {
        int count = 0;
        for (int at = text.IndexOf(fragment, StringComparison.Ordinal); at >= 0; at = text.IndexOf(fragment, at + 1, StringComparison.Ordinal))
        {
            count++;
        }

        return count;
    }

    /// <summary>Runs the solution's own build of <c>cvrl</c> (same configuration as these tests) as a process.</summary>
    private static async Task<(int Code, string Stdout, string Stderr)> RunCvrlAsync(params string[] arguments)
    {
        string testFolder = AppContext.BaseDirectory;
        string configuration = testFolder.Contains($"{Path.DirectorySeparatorChar}Debug{Path.DirectorySeparatorChar}", StringComparison.Ordinal) ? "Debug" : "Release";
        string repo = testFolder;
        while (!File.Exists(Path.Combine(repo, "CvrlServe.sln")))
        {
            repo = Path.GetDirectoryName(repo) ?? throw new InvalidOperationException("CvrlServe.sln not found above the test folder.");
        }

        string cvrl = Path.Combine(repo, "src", "CvrlServe.Training", "bin", configuration, "net10.0", "linux-x64", "cvrl.dll");
        Assert.True(File.Exists(cvrl), $"{cvrl} is missing: build the solution (dotnet build CvrlServe.sln -c {configuration}) first.");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(cvrl);
        foreach (string argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var stdout = process.StandardOutput.ReadToEndAsync();
        var stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(2));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // Nothing left behind: the run and anything it started.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            Assert.Fail($"cvrl {string.Join(' ', arguments)} did not finish within 2 minutes: {await stderr}");
        }

        return (process.ExitCode, await stdout, await stderr);
    }

    /// <summary>What the front does with a POST.</summary>
    public enum Fault
    {
        /// <summary>Forwards it and passes the answer back.</summary>
        None,

        /// <summary>503 with Retry-After: 1 and a problem body.</summary>
        Unavailable,

        /// <summary>401 with a problem body.</summary>
        Unauthorized,

        /// <summary>200 with an HTML page (a proxy's error page, say).</summary>
        Html,

        /// <summary>413 with an HTML page, as a gateway's own body limit answers.</summary>
        GatewayTooLarge,

        /// <summary>307 to another host.</summary>
        Redirect,

        /// <summary>Forwards it; the answer's embedding loses a value.</summary>
        WrongDimension,

        /// <summary>Forwards it; the answer names another model id.</summary>
        OtherModel,

        /// <summary>Forwards it; announces the whole answer's length, sends half of it, and drops the connection.</summary>
        CutOff,
    }

    /// <summary>A front on loopback that does to the Nth POST (from 1) what <c>faults(N)</c> says; GETs are forwarded.</summary>
    private sealed class FlakyFront : IAsyncDisposable
    {
        private readonly HttpListener _listener = new();
        private readonly HttpClient _forward;
        private readonly Func<int, Fault> _faults;
        private readonly Task _loop;
        private int _posts;

        private FlakyFront(Uri target, Func<int, Fault> faults)
        {
            _forward = new HttpClient { BaseAddress = target, Timeout = TimeSpan.FromMinutes(2) };
            _faults = faults;
            int port;
            using (var probe = new TcpListener(IPAddress.Loopback, 0))
            {
                probe.Start();
                port = ((IPEndPoint)probe.LocalEndpoint).Port;
            }

            BaseAddress = new Uri($"http://127.0.0.1:{port}/");
            _listener.Prefixes.Add(BaseAddress.ToString());
            _listener.Start();
            _loop = Task.Run(LoopAsync);
        }

        public Uri BaseAddress { get; }

        public int Posts => Volatile.Read(ref _posts);

        public static FlakyFront Start(Uri target, Func<int, Fault> faults) => new(target, faults);

        public async ValueTask DisposeAsync()
        {
            _listener.Stop();
            _listener.Close();
            try
            {
                await _loop;
            }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException)
            {
            }

            _forward.Dispose();
        }

        private async Task LoopAsync()
        {
            while (_listener.IsListening)
            {
                HttpListenerContext context;
                try
                {
                    context = await _listener.GetContextAsync();
                }
                catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException)
                {
                    return;
                }

                _ = Task.Run(() => HandleAsync(context));
            }
        }

        private async Task HandleAsync(HttpListenerContext context)
        {
            var request = context.Request;
            var response = context.Response;
            try
            {
                await HandleAsync(request, response);
            }
            catch (Exception e) when (e is HttpRequestException or HttpListenerException or IOException or InvalidOperationException)
            {
                // Forwarding failed: the client sees a dropped connection, never a hang.
                response.Abort();
            }
        }

        private async Task HandleAsync(HttpListenerRequest request, HttpListenerResponse response)
        {
            var fault = request.HttpMethod == "POST" ? _faults(Interlocked.Increment(ref _posts)) : Fault.None;
            using var body = new MemoryStream();
            await request.InputStream.CopyToAsync(body);
            switch (fault)
            {
                case Fault.Unavailable:
                    response.AddHeader("Retry-After", "1");
                    await AnswerAsync(response, 503, "application/problem+json", """{"type":"urn:cvrlserve:problem:overloaded","title":"Busy","status":503}""");
                    return;
                case Fault.Unauthorized:
                    await AnswerAsync(response, 401, "application/problem+json", """{"type":"urn:cvrlserve:problem:unauthorized","title":"Unauthorized","status":401}""");
                    return;
                case Fault.Html:
                    await AnswerAsync(response, 200, "text/html", "<html><body>Welcome to our proxy</body></html>");
                    return;
                case Fault.GatewayTooLarge:
                    await AnswerAsync(response, 413, "text/html", "<html><body>413 Request Entity Too Large</body></html>");
                    return;
                case Fault.Redirect:
                    response.AddHeader("Location", "http://127.0.0.1:1/v1/embeddings");
                    await AnswerAsync(response, 307, "text/plain", "moved");
                    return;
            }

            using var forwarded = new HttpRequestMessage(new HttpMethod(request.HttpMethod), request.Url!.PathAndQuery.TrimStart('/'));
            if (request.HttpMethod != "GET")
            {
                forwarded.Content = new ByteArrayContent(body.ToArray());
                forwarded.Content.Headers.TryAddWithoutValidation("Content-Type", request.ContentType);
            }

            using var answer = await _forward.SendAsync(forwarded);
            byte[] bytes = await answer.Content.ReadAsByteArrayAsync();
            if (fault is Fault.WrongDimension or Fault.OtherModel && System.Text.Json.Nodes.JsonNode.Parse(bytes) is System.Text.Json.Nodes.JsonObject json)
            {
                if (fault == Fault.WrongDimension)
                {
                    json["embedding"]!.AsArray().RemoveAt(0);
                }
                else
                {
                    json["modelId"] = "another-model-id";
                }

                bytes = System.Text.Encoding.UTF8.GetBytes(json.ToJsonString());
            }

            response.StatusCode = (int)answer.StatusCode;
            response.ContentType = answer.Content.Headers.ContentType?.ToString();
            if (fault == Fault.CutOff)
            {
                response.ContentLength64 = bytes.Length;
                await response.OutputStream.WriteAsync(bytes.AsMemory(0, bytes.Length / 2));
                await response.OutputStream.FlushAsync();
                response.Abort();
                return;
            }

            response.ContentLength64 = bytes.Length;
            await response.OutputStream.WriteAsync(bytes);
            response.Close();
        }

        private static async Task AnswerAsync(HttpListenerResponse response, int status, string type, string text)
        {
            byte[] bytes = System.Text.Encoding.UTF8.GetBytes(text);
            response.StatusCode = status;
            response.ContentType = type;
            response.ContentLength64 = bytes.Length;
            await response.OutputStream.WriteAsync(bytes);
            response.Close();
        }
    }
}
