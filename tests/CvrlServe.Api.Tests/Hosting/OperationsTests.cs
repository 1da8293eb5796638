using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using Microsoft.Extensions.Diagnostics.HealthChecks;

namespace CvrlServe.Api.Tests.Hosting;

/// <summary>Health, metrics and the OpenAPI document as a gateway, Prometheus and a client generator see them.</summary>
[Collection(SerialMetrics.Name)]
public sealed class OperationsTests(ApiVideos videos)
{
    [Fact]
    public async Task Health_LiveAlways_ReadyOnlyWhenTheDefaultModelServes()
    {
        await using var broken = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DefaultModel"] = CvrlApiFactory.Model },
            prepareModels: models => File.WriteAllBytes(Path.Combine(models, CvrlApiFactory.Model, "encoder.onnx"), [1, 2, 3]));
        await broken.StartedAsync();
        using var client = broken.Client();
        using (var live = await client.GetAsync(new Uri("/health/live", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.OK, live.StatusCode);
        }

        using (var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        }

        await using var good = new CvrlApiFactory();
        await good.StartedAsync();
        using var goodClient = good.Client();
        using var goodReady = await goodClient.GetAsync(new Uri("/health/ready", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, goodReady.StatusCode);
    }

    [Fact]
    public async Task Health_RequireGpu_ReadyExactlyWhenTheDefaultModelRunsOnCuda()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:Provider"] = "Cuda", ["Cvrl:RequireGpu"] = "true" });
        await app.StartedAsync();
        using var client = app.Client();
        var models = await client.GetFromJsonAsync<JsonElement>(new Uri("/v1/models", UriKind.Relative));
        var model = models.GetProperty("models").EnumerateArray().Single(m => m.GetProperty("isDefault").GetBoolean());
        Assert.True(model.GetProperty("ready").GetBoolean());
        bool onCuda = model.GetProperty("provider").GetString() == "CUDAExecutionProvider";

        using var ready = await client.GetAsync(new Uri("/health/ready", UriKind.Relative));
        using var live = await client.GetAsync(new Uri("/health/live", UriKind.Relative));

        // Wherever CUDA does not load (this machine), the model serves on the CPU, says why, and the replica is not ready.
        Assert.Equal(onCuda ? HttpStatusCode.OK : HttpStatusCode.ServiceUnavailable, ready.StatusCode);
        Assert.True(onCuda || model.GetProperty("providerReason").GetString() is { Length: > 0 });
        Assert.Equal(HttpStatusCode.OK, live.StatusCode);
    }

    [Theory]
    [InlineData("CUDAExecutionProvider", false, HealthStatus.Healthy)]
    [InlineData("CPUExecutionProvider", false, HealthStatus.Healthy)]
    [InlineData("CUDAExecutionProvider", true, HealthStatus.Healthy)]
    [InlineData("CPUExecutionProvider", true, HealthStatus.Unhealthy)]
    public void ModelsReady_RequireGpu_OnlyCudaCounts(string provider, bool requireGpu, HealthStatus expected)
    {
        var statuses = new[]
        {
            new CvrlServe.Core.Inference.ModelStatus("m", true, true, provider, "id", "sha", 128, null, DateTimeOffset.UtcNow),
            new CvrlServe.Core.Inference.ModelStatus("other", false, false, null, null, null, null, "broken", null),
        };

        Assert.Equal(expected, CvrlServe.Api.Hosting.ModelsReadyCheck.Evaluate(statuses, "m", requireGpu).Status);
        Assert.Equal(HealthStatus.Unhealthy, CvrlServe.Api.Hosting.ModelsReadyCheck.Evaluate(statuses, "other", requireGpu).Status);
    }

    [Theory]
    [InlineData("Auto", false)]
    [InlineData("Cli", false)]
    [InlineData("Auto", true)]
    public async Task Decoder_ModelsAndMetricsSayHowUploadsAreDecoded(string path, bool nvdec)
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DecodePath"] = path, ["Cvrl:Nvdec"] = nvdec ? "true" : "false" });
        await app.StartedAsync();
        var reader = app.Services.GetReader();
        string backend = await reader.CheckDecoderAsync();
        using var client = app.Client(CvrlApiFactory.AdminKey);
        using (var embedded = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("moving.mp4"))))
        {
            Assert.Equal(HttpStatusCode.OK, embedded.StatusCode);
        }

        using var models = JsonDocument.Parse(await client.GetStringAsync(new Uri("/v1/models", UriKind.Relative)));
        var decoder = models.RootElement.GetProperty("decoder");
        string metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));

        // The answer is the reader's own state, whichever it is here; Cli is chosen, so it must be cli.
        string expected = reader.UsesWorker ? "worker" : "cli";
        Assert.Equal(expected, decoder.GetProperty("path").GetString());
        Assert.Equal(backend, $"{expected} ({decoder.GetProperty("detail").GetString()})");
        Assert.Contains($"cvrlserve_decode_path{{path=\"{expected}\"}} 1", metrics, StringComparison.Ordinal);
        if (path == "Cli")
        {
            Assert.Equal("cli", expected);
            Assert.Contains("DecodePath Cli", backend, StringComparison.Ordinal);
        }

        var nvdecUse = decoder.GetProperty("nvdec");
        if (!nvdec)
        {
            Assert.Equal(JsonValueKind.Null, nvdecUse.ValueKind);
        }
        else if (reader.UsesWorker)
        {
            // NVDEC served the upload, or the software decoder did and the answer says why (no GPU here).
            long onGpu = nvdecUse.GetProperty("decodes").GetInt64(), inSoftware = nvdecUse.GetProperty("softwareDecodes").GetInt64();
            Assert.True(onGpu + inSoftware >= 1, nvdecUse.ToString());
            Assert.True(inSoftware == 0 || nvdecUse.GetProperty("lastSoftwareReason").GetString()!.StartsWith("software (", StringComparison.Ordinal), nvdecUse.ToString());
            Assert.True(metrics.Contains($"cvrlserve_decodes_by_decoder{{decoder=\"software\"}} {inSoftware}", StringComparison.Ordinal), metrics);
        }
    }

    [Fact]
    public async Task Metrics_AfterRequests_RouteStatusLatencyBudgetStagesAndProvider()
    {
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:DecodedMemoryBudgetBytes"] = "123456789" });
        await app.StartedAsync();
        using var client = app.Client();
        string before = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        await ApiCalls.EmbedAsync(client, videos.Path("red-0.mp4"));
        using (await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("text.mp4"))))
        {
        }

        using (var five = await client.PostAsync(new Uri("/v1/embeddings", UriKind.Relative), CvrlApiFactory.Form(videos.Path("moving.mp4"), ("clips", "5"))))
        {
            Assert.Equal(HttpStatusCode.OK, five.StatusCode);
        }

        string metrics = await client.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        double Delta(string series) => MetricsText.Value(metrics, series) - MetricsText.Value(before, series);
        Assert.Equal(2, Delta("http_request_duration_seconds_count{code=\"200\",method=\"POST\",controller=\"\",action=\"\",endpoint=\"/v1/embeddings\"}"));
        Assert.Equal(1, Delta("http_request_duration_seconds_count{code=\"415\",method=\"POST\",controller=\"\",action=\"\",endpoint=\"/v1/embeddings\"}"));
        Assert.Equal(123456789, MetricsText.Value(metrics, "cvrlserve_decoded_memory_budget"));
        Assert.Contains("\ncvrlserve_decoded_memory_in_use 0\n", metrics, StringComparison.Ordinal);
        Assert.Equal(2, Delta("cvrlserve_decode_duration_count"));
        Assert.Equal(2, Delta("cvrlserve_inference_duration_count"));
        // The tiny model's 2 clips × 1 crop, then 5 clips: one request in each of the buckets ≤2 and (4, 8].
        Assert.Equal(1, Delta("cvrlserve_request_clips_bucket{le=\"2\"}"));
        Assert.Equal(1, Delta("cvrlserve_request_clips_bucket{le=\"4\"}"));
        Assert.Equal(2, Delta("cvrlserve_request_clips_bucket{le=\"8\"}"));
        // Core's micro-batcher: every batch's size, by model (2 + 5 clips, batched alone here).
        Assert.Equal(7, Delta($"cvrlserve_core_batch_size_sum{{model=\"{CvrlApiFactory.Model}\"}}"));
        Assert.Contains($"cvrlserve_model_ready{{model=\"{CvrlApiFactory.Model}\",provider=\"CPUExecutionProvider\"}} 1", metrics, StringComparison.Ordinal);
        Assert.Contains($"cvrlserve_batch_queue_length{{model=\"{CvrlApiFactory.Model}\"}} 0", metrics, StringComparison.Ordinal);
    }

    [Fact]
    public async Task OpenApi_UploadsAreMultipartWithABinaryFile_EveryDocumentedProblemListed()
    {
        await using var app = new CvrlApiFactory();
        using var client = app.Client();
        var document = JsonDocument.Parse(await client.GetStringAsync(new Uri("/swagger/v1/swagger.json", UriKind.Relative))).RootElement;
        var paths = document.GetProperty("paths");
        foreach (string path in new[] { "/v1/embeddings", "/v1/classify" })
        {
            var post = paths.GetProperty(path).GetProperty("post");
            var schema = post.GetProperty("requestBody").GetProperty("content").GetProperty("multipart/form-data").GetProperty("schema");
            var file = Resolve(document, schema).GetProperty("properties").GetProperty("file");
            Assert.Equal("binary", Resolve(document, file).GetProperty("format").GetString());
            var responses = post.GetProperty("responses");
            foreach (string status in new[] { "200", "400", "401", "404", "413", "415", "422", "429", "503", "504" })
            {
                Assert.True(responses.TryGetProperty(status, out _), $"{path} does not document {status}");
            }

            Assert.False(string.IsNullOrWhiteSpace(post.GetProperty("summary").GetString()));
        }

        // Swagger UI's "Example Value" for the JSON bodies and the main responses.
        foreach (string schema in new[] { "EmbeddingResponse", "ClassifyResponse", "ClassifyEmbeddingRequest", "TrainProbeRequest" })
        {
            Assert.True(document.GetProperty("components").GetProperty("schemas").GetProperty(schema).TryGetProperty("example", out _), $"{schema} has no example");
        }

        foreach (string path in new[] { "/v1/models", "/v1/classify/embedding", "/v1/probes", "/v1/probes/{model}/{name}", "/v1/probes/archive", "/v1/jobs/{id}" })
        {
            Assert.True(paths.TryGetProperty(path, out _), $"{path} is not in the document");
        }
    }

    /// <summary>The schema itself, following one $ref into components.</summary>
    private static JsonElement Resolve(JsonElement document, JsonElement schema) =>
        schema.TryGetProperty("$ref", out var reference)
            ? document.GetProperty("components").GetProperty("schemas").GetProperty(reference.GetString()!.Split('/')[^1])
            : schema;
}
