using System.Globalization;
using System.Net.Http.Headers;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CvrlServe.Training.Commands;

/// <summary>
/// A request that did not give an embedding: the server's final answer (its status and problem+json type), or
/// status 0 when the client gave up retrying or the answer was not one.
/// </summary>
internal sealed class ServerRefusedException(int status, string kind, string message) : Exception(message)
{
    public int Status { get; } = status;

    public string Kind { get; } = kind;

    /// <summary>
    /// The refusal is about the video and sending it again cannot change it: too large (413), not a video
    /// (415), undecodable or past a limit (422). Anything else (a revoked key, a missing model, a server error,
    /// giving up on retries) says nothing final about the video.
    /// </summary>
    public bool IsAboutTheVideo => Status is 413 or 415 or 422 && Kind.StartsWith("urn:cvrlserve:problem:", StringComparison.Ordinal);

    /// <summary>The key is refused: every other video would be too.</summary>
    public bool IsAboutTheKey => Status is 401 or 403;
}

/// <summary>
/// <c>cvrl embed --server URL</c>: videos embedded by a CvrlServe service (or the gateway in front of it) through
/// <c>POST /v1/embeddings</c>, the file streamed from disk. Retried with capped exponential backoff and jitter
/// on what is worth retrying: no connection, a connection lost mid-answer, a timeout, 502/503/504 and 429
/// (after the server's Retry-After when it gives one). Resending is safe here: an embedding has no side effect,
/// the same upload gives the same answer. Any other status ends the request with its problem's type. Each
/// attempt has the whole timeout for sending, waiting and reading the answer, and an answer is read no
/// further than <see cref="MaxAnswerBytes"/>.
/// </summary>
internal sealed class ServerEmbedClient : IDisposable
{
    public static readonly TimeSpan MaxDelay = TimeSpan.FromSeconds(60);

    /// <summary>Per-clip embeddings of a long video make large answers (~20 KB a clip at 2048-d); nothing real comes near this.</summary>
    public const long MaxAnswerBytes = 64L * 1024 * 1024;

    private readonly HttpClient _http;
    private readonly int _maxAttempts;
    private readonly TimeSpan _requestTimeout;
    private readonly TimeSpan _baseDelay;
    private readonly TextWriter _log;

    public ServerEmbedClient(Uri server, string? apiKey, int maxAttempts, TimeSpan requestTimeout, TimeSpan baseDelay, TextWriter log)
    {
        // Timeouts are per attempt (SendAsync), over the answer's body too, which HttpClient.Timeout is not.
        // No redirects: the key (X-Api-Key) and the video would follow them to wherever the server points.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, AllowAutoRedirect = false, PooledConnectionLifetime = TimeSpan.FromMinutes(5) })
        {
            BaseAddress = new Uri(server.ToString().TrimEnd('/') + "/"),
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _requestTimeout = requestTimeout;
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
        try
        {
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
        catch (Exception e) when (e is KeyNotFoundException or InvalidOperationException)
        {
            throw new ServerRefusedException(0, "bad-answer", $"The server's GET /v1/models answer is not a model list: {e.Message}");
        }
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

    /// <summary>
    /// <c>POST /v1/videos</c>: the service stores the video in its library (or finds the entry this key stored).
    /// The answer is the entry, or, for a video the service makes a job of, the job record.
    /// </summary>
    public async Task<JsonDocument> StoreAsync(string path, string? model, string name, IReadOnlyList<string> tags, CancellationToken cancellationToken)
    {
        return await SendAsync(() =>
        {
            var form = new MultipartFormDataContent();
            var file = new StreamContent(new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 81920, FileOptions.Asynchronous | FileOptions.SequentialScan));
            file.Headers.ContentType = new MediaTypeHeaderValue("application/octet-stream");
            form.Add(file, "file", "video" + Path.GetExtension(path));
            form.Add(new StringContent(name), "name");
            if (model is not null)
            {
                form.Add(new StringContent(model), "model");
            }

            if (tags.Count > 0)
            {
                form.Add(new StringContent(string.Join(',', tags)), "tags");
            }

            return new HttpRequestMessage(HttpMethod.Post, "v1/videos") { Content = form };
        }, path, cancellationToken).ConfigureAwait(false);
    }

    /// <summary><c>GET /v1/jobs/{id}</c>, polled every <paramref name="interval"/> until the job has succeeded or failed.</summary>
    public async Task<JsonDocument> FinishedJobAsync(string id, TimeSpan interval, CancellationToken cancellationToken)
    {
        if (!id.All(char.IsAsciiLetterOrDigit))
        {
            throw new ServerRefusedException(0, "bad-answer", "The server's job id is not one it could have issued.");
        }

        while (true)
        {
            var job = await SendAsync(() => new HttpRequestMessage(HttpMethod.Get, $"v1/jobs/{id}"), $"job {id}", cancellationToken).ConfigureAwait(false);
            if (job.RootElement.TryGetProperty("state", out var state) && state.GetString() is "succeeded" or "failed")
            {
                return job;
            }

            job.Dispose();
            await Task.Delay(interval, cancellationToken).ConfigureAwait(false);
        }
    }

    public void Dispose() => _http.Dispose();

    private async Task<JsonDocument> SendAsync(Func<HttpRequestMessage> request, string what, CancellationToken cancellationToken)
    {
        for (int attempt = 1; ; attempt++)
        {
            Interlocked.Increment(ref _attempts);
            TimeSpan? retryAfter = null;
            string reason;
            // Outside the try: a video that cannot be opened is not a network problem (the caller records it).
            using var message = request();
            using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            deadline.CancelAfter(_requestTimeout);
            try
            {
                using var response = await _http.SendAsync(message, HttpCompletionOption.ResponseHeadersRead, deadline.Token).ConfigureAwait(false);
                if (response.IsSuccessStatusCode)
                {
                    return await ReadAnswerAsync(response, deadline.Token).ConfigureAwait(false);
                }

                int status = (int)response.StatusCode;
                var (kind, text) = await ProblemAsync(response, deadline.Token).ConfigureAwait(false);
                if (status is not (429 or 502 or 503 or 504))
                {
                    throw new ServerRefusedException(status, kind, text);
                }

                retryAfter = RetryAfter(response.Headers.RetryAfter);
                reason = $"{status} {text}";
            }
            catch (Exception e) when (e is HttpRequestException or IOException)
            {
                // No connection, or one lost mid-answer (HttpIOException is an IOException).
                reason = e.Message;
            }
            catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested)
            {
                reason = $"no whole answer within {_requestTimeout.TotalSeconds:0.#} s";
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

    /// <summary>A 2xx answer's JSON, read no further than <see cref="MaxAnswerBytes"/>; anything else is a bad answer (not retried).</summary>
    private static async Task<JsonDocument> ReadAnswerAsync(HttpResponseMessage response, CancellationToken cancellationToken)
    {
        if (response.Content.Headers.ContentLength > MaxAnswerBytes)
        {
            throw new ServerRefusedException(0, "bad-answer", $"The server's answer is {response.Content.Headers.ContentLength} bytes, more than {MaxAnswerBytes}.");
        }

        await using var body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
        using var bounded = new MemoryStream();
        var buffer = new byte[81920];
        int read;
        while ((read = await body.ReadAsync(buffer, cancellationToken).ConfigureAwait(false)) > 0)
        {
            if (bounded.Length + read > MaxAnswerBytes)
            {
                throw new ServerRefusedException(0, "bad-answer", $"The server's answer is longer than {MaxAnswerBytes} bytes.");
            }

            bounded.Write(buffer, 0, read);
        }

        try
        {
            // Parsed in place: the answer is held once.
            return JsonDocument.Parse(bounded.GetBuffer().AsMemory(0, (int)bounded.Length));
        }
        catch (JsonException e)
        {
            string type = response.Content.Headers.ContentType?.MediaType ?? "no content type";
            throw new ServerRefusedException(0, "bad-answer", $"The server's {(int)response.StatusCode} answer ({type}) is not JSON: {e.Message}");
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
            // The server's words go to a terminal and a file: no control characters (escape sequences), bounded.
            static string Clean(string value) => new string(value.Take(1000).Select(c => char.IsControl(c) ? ' ' : c).ToArray());
            return (Clean(kind), Clean(text));
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or HttpRequestException or IOException)
        {
            return ("http-" + ((int)response.StatusCode).ToString(CultureInfo.InvariantCulture), fallback);
        }
    }
}
