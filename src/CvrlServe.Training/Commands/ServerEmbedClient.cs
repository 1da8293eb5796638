using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CvrlServe.Training.Commands;

/// <summary>A video the server refused for good (a 4xx other than 429): its problem+json type and text.</summary>
internal sealed class ServerRefusedException(int status, string kind, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string Kind { get; } = kind;
}

/// <summary>
/// <c>cvrl embed --server URL</c>: videos embedded by a CvrlServe service (or the gateway in front of it) through
/// <c>POST /v1/embeddings</c>, the file streamed from disk. Retried with capped exponential backoff and jitter
/// on what is worth retrying: no connection, a timeout, 502/503/504 and 429 (after the server's Retry-After
/// when it gives one). Resending is safe here: an embedding has no side effect, the same upload gives the same
/// answer. Any other 4xx or 5xx is final and recorded with the problem's type.
/// </summary>
internal sealed class ServerEmbedClient : IDisposable
{
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(60);

    private readonly HttpClient _http;
    private readonly int _maxAttempts;
    private readonly TimeSpan _baseDelay;
    private readonly TextWriter _log;

    public ServerEmbedClient(Uri server, string? apiKey, int maxAttempts, TimeSpan requestTimeout, TimeSpan baseDelay, TextWriter log)
    {
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = new Uri(server.ToString().TrimEnd('/') + "/"),
            Timeout = requestTimeout,
        };
        if (!string.IsNullOrEmpty(apiKey))
        {
            _http.DefaultRequestHeaders.Add("X-Api-Key", apiKey);
        }

        _maxAttempts = maxAttempts;
        _baseDelay = baseDelay;
        _log = log;
    }

    /// <summary>Attempts made so far over every request (retries included).</summary>
    public int Attempts => _attempts;

    private int _attempts;

    /// <summary>The model id of <paramref name="model"/> (or the server's default model) from <c>GET /v1/models</c>.</summary>
    public async Task<(string Name, string ModelId)> ModelAsync(string? model, CancellationToken cancellationToken)
    {
        using var json = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, "v1/models"), "models", cancellationToken).ConfigureAwait(false);
        var root = json.RootElement;
        string? name = model ?? (root.TryGetProperty("defaultModel", out var d) ? d.GetString() : null);
        foreach (var entry in root.GetProperty("models").EnumerateArray())
        {
            if (entry.GetProperty("name").GetString() == name)
            {
                return entry.TryGetProperty("modelId", out var id) && id.GetString() is { } modelId
                    ? (name!, modelId)
                    : throw new ServerRefusedException(503, "urn:cvrlserve:problem:not-ready", $"Model '{name}' is not ready on the server.");
            }
        }

        throw new ServerRefusedException(404, "urn:cvrlserve:problem:not-found", name is null ? "The server has no default model." : $"The server has no model '{name}'.");
    }

    /// <summary>The service's <c>EmbeddingResponse</c> for one video.</summary>
    public async Task<JsonDocument> EmbedAsync(string path, string? model, bool perClip, CancellationToken cancellationToken)
    {
        return await SendAsync(() =>
        {
            // A new form per attempt: the file is reopened and streamed again.
            var form = new MultipartFormDataContent();
            var file = new StreamContent(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.Asynchronous | FileOptions.SequentialScan));
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "file", "video" + Path.GetExtension(path));
            if (model is not null)
            {
                form.Add(new StringContent(model), "model");
            }

            form.Add(new StringContent(perClip ? "true" : "false"), "perClip");
            return new HttpRequestMessage(HttpMethod.Post, "v1/embeddings") { Content = form };
        }, path, cancellationToken).ConfigureAwait(false);
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument> SendAsync(Func<HttpRequestMessage> request, string what, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            Interlocked.Increment(ref _attempts);
            TimeSpan? retryAfter = null;
            string reason;
            try
            {
                using var message = request();
                using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, cancellationToken).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
                    return await JsonDocument.ParseAsync(body, cancellationToken: cancellationToken).ConfigureAwait(false);
                }

                int status = (int)response.StatusCode;
                var (kind, text) = await ProblemAsync(response, cancellationToken).ConfigureAwait(false);
                if (status is not (429 or 502 or 503 or 504))
                {
                    throw new ServerRefusedException(status, kind, text);
                }

                retryAfter = RetryAfter(response.Headers.RetryAfter);
                reason = $"{status} {text}";
            }
            catch (HttpRequestException e)
            {
                reason = e.Message;
            }
            catch (TaskCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                reason = $"no answer within {_http.Timeout.TotalSeconds:0} s";
            }

            if (attempt >= _maxAttempts)
            {
                throw new ServerRefusedException(0, "urn:cvrlserve:problem:unavailable", $"Gave up after {attempt} attempts: {reason}");
            }

            var delay = retryAfter ?? Backoff(attempt);
            _log.WriteLine($"cvrl: {what}: {reason}; retrying in {delay.TotalSeconds:0.#} s ({attempt}/{_maxAttempts})");
            await Task.Delay(delay, cancellationToken).ConfigureAwait(false);
        }
    }

    /// <summary>base × 2^(attempt−1), capped, times a random factor in [0.5, 1) so that many workers do not retry in step.</summary>
    private TimeSpan Backoff(int attempt)
    {
        double seconds = Math.Min(MaxDelay.TotalSeconds, _baseDelay.TotalSeconds * Math.Pow(2, attempt - 1));
        return TimeSpan.FromSeconds(seconds * (0.5 + (Random.Shared.NextDouble() / 2)));
    }

    private static TimeSpan? RetryAfter(RetryConditionHeaderValue? header)
    {
        var delay = header?.Delta ?? (header?.Date is { } date ? date - DateTimeOffset.UtcNow : null);
        return delay is null ? null : TimeSpan.FromTicks(Math.Clamp(delay.Value.Ticks, 0, MaxDelay.Ticks));
    }

    private static async Task<(string Kind, string Text)> ProblemAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        string fallback = ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture) + " " + response.ReasonPhrase;
        try
        {
            // Problems are small; a misbehaving server's body is read no further than 64 KB.
            var bytes = new byte[64 * 1024];
            await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            int length = await body.ReadAtLeastAsync(bytes, bytes.Length, throwOnEndOfStream: false, cancellationToken).ConfigureAwait(false);
            var problem = JsonNode.Parse(bytes.AsSpan(0, length)) as JsonObject;
            string kind = problem?["type"]?.GetValue<string>() ?? "http-" + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture);
            string text = problem?["detail"]?.GetValue<string>() ?? problem?["title"]?.GetValue<string>() ?? fallback;
            return (kind, text);
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or HttpRequestException or IOException)
        {
            return ("http-" + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), fallback);
        }
    }
}
