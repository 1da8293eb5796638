using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;

namespace CvrlServe.Api.Library;

/// <summary>
/// Where and how the service may call a client's webhook. Webhooks are enabled only when both
/// <see cref="AllowedHosts"/> and <see cref="Secret"/> are set.
/// </summary>
public sealed class WebhookOptions
{
    /// <summary>
    /// Host names a webhook may name, compared case-insensitively: an exact name (<c>hooks.example.com</c>, or
    /// an IP literal such as <c>203.0.113.7</c>) or a suffix pattern <c>*.example.com</c>, which matches any
    /// name below <c>example.com</c> but not <c>example.com</c> itself. Empty: webhooks are disabled.
    /// </summary>
    public List<string> AllowedHosts { get; init; } = [];

    /// <summary>The HMAC-SHA256 key every delivery is signed with; required for webhooks to be enabled.</summary>
    public string? Secret { get; init; }

    /// <summary>Attempts per delivery, the first included.</summary>
    public int MaxAttempts { get; init; } = 5;

    /// <summary>The wait before the first retry; each later wait doubles, with jitter, capped at 60 s.</summary>
    public double FirstRetrySeconds { get; init; } = 2;

    /// <summary>The limit on one attempt, from connecting to the response's headers.</summary>
    public double TimeoutSeconds { get; init; } = 10;

    /// <summary>
    /// TEST ONLY, off by default: permits plain http and the loopback addresses 127.0.0.0/8 and ::1 (never a
    /// private, link-local or reserved address, and never loopback disguised in an IPv6 form).
    /// </summary>
    public bool AllowLoopbackForTests { get; init; }
}

/// <summary>Resolves a host name to the addresses a webhook delivery may connect to.</summary>
public interface IHostResolver
{
    Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken);
}

/// <summary>The system resolver (<see cref="Dns.GetHostAddressesAsync(string, CancellationToken)"/>).</summary>
public sealed class DnsHostResolver : IHostResolver
{
    public Task<IPAddress[]> ResolveAsync(string host, CancellationToken cancellationToken) => Dns.GetHostAddressesAsync(host, cancellationToken);
}

/// <summary>A webhook URL the service will not call; the message is safe to show the client.</summary>
public sealed class WebhookRefusedException(string message) : Exception(message);

/// <summary>
/// How a delivery ended: whether a 2xx answer came, after how many attempts, the last HTTP status seen and,
/// when not delivered, why (a short client-safe text).
/// </summary>
public sealed record WebhookDelivery(bool Delivered, int Attempts, int? LastStatus, string? LastError);

/// <summary>
/// Delivers signed job notifications to client-supplied URLs without letting a client aim the service at its
/// own network. <see cref="Validate"/> checks a URL when it is submitted; <see cref="DeliverAsync"/> checks it
/// again and connects only through its own connect step, which resolves the host, drops every forbidden
/// address (see <see cref="IsForbidden"/>) and connects to an address it has just checked: the address checked
/// is the address used, so a DNS answer that changes between check and use gains nothing. Redirects are not
/// followed and no proxy is used. One instance serves the whole process.
/// </summary>
public sealed partial class WebhookSender : IDisposable
{
    /// <summary>The longest URL accepted.</summary>
    public const int MaxUrlLength = 2048;

    private const int MaxEventIdLength = 200;
    private static readonly TimeSpan MaxWait = TimeSpan.FromSeconds(60);
    private static readonly IdnMapping Idn = new() { UseStd3AsciiRules = true };

    private readonly WebhookOptions _options;
    private readonly IHostResolver _resolver;
    private readonly ILogger _logger;
    private readonly TimeProvider _time;
    private readonly Func<IPEndPoint, CancellationToken, ValueTask<Stream>>? _connect;
    private readonly HttpClient _client;
    private readonly HashSet<string> _exactHosts = new(StringComparer.OrdinalIgnoreCase);
    private readonly List<IPAddress> _exactAddresses = [];
    private readonly List<string> _suffixes = [];
    private readonly TimeSpan _timeout;

    /// <summary>
    /// Checks <paramref name="options"/> (an allowlist entry that is empty, a bare <c>*</c> or has a <c>*</c>
    /// anywhere but a leading <c>*.</c> throws <see cref="ArgumentException"/>). <paramref name="connect"/>
    /// replaces the socket connect to an already-checked address (tests); <paramref name="time"/> stamps the
    /// signatures and times the waits.
    /// </summary>
    public WebhookSender(WebhookOptions options, IHostResolver resolver, ILogger<WebhookSender> logger, TimeProvider? time = null,
        Func<IPEndPoint, CancellationToken, ValueTask<Stream>>? connect = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentNullException.ThrowIfNull(resolver);
        ArgumentNullException.ThrowIfNull(logger);
        ArgumentOutOfRangeException.ThrowIfLessThan(options.MaxAttempts, 1);
        if (!double.IsFinite(options.FirstRetrySeconds) || options.FirstRetrySeconds < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.FirstRetrySeconds, "FirstRetrySeconds must be a finite number ≥ 0.");
        }

        if (!double.IsFinite(options.TimeoutSeconds) || options.TimeoutSeconds <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(options), options.TimeoutSeconds, "TimeoutSeconds must be a finite number > 0.");
        }

        foreach (string entry in options.AllowedHosts)
        {
            AddAllowedHost(entry, nameof(options));
        }

        _options = options;
        _resolver = resolver;
        _logger = logger;
        _time = time ?? TimeProvider.System;
        _connect = connect;
        _timeout = TimeSpan.FromSeconds(options.TimeoutSeconds);
        var handler = new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            UseProxy = false,
            Proxy = null,
            UseCookies = false,
            AutomaticDecompression = DecompressionMethods.None,
            ConnectTimeout = _timeout,
            PooledConnectionIdleTimeout = TimeSpan.FromSeconds(30),
            ConnectCallback = ConnectAsync,
        };
        _client = new HttpClient(handler) { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>True when both an allowlist and a secret are configured.</summary>
    public bool Enabled => _options.AllowedHosts.Count > 0 && !string.IsNullOrEmpty(_options.Secret);

    /// <summary>
    /// The checks made when a client submits a webhook URL, without any DNS lookup: webhooks are enabled, the
    /// URL is absolute, at most <see cref="MaxUrlLength"/> characters, https (http only with
    /// <see cref="WebhookOptions.AllowLoopbackForTests"/>), without user info, and its host is on the allowlist;
    /// an IP-literal host must also be an address <see cref="IsForbidden"/> permits. Any port is accepted.
    /// Returns the parsed URL or throws <see cref="WebhookRefusedException"/> with a client-safe message.
    /// </summary>
    public Uri Validate(string url)
    {
        if (!Enabled)
        {
            throw new WebhookRefusedException("Webhooks are not configured on this service.");
        }

        if (string.IsNullOrWhiteSpace(url))
        {
            throw new WebhookRefusedException("The webhook URL is empty.");
        }

        if (url.Length > MaxUrlLength)
        {
            throw new WebhookRefusedException($"The webhook URL is longer than {MaxUrlLength} characters.");
        }

        if (!Uri.TryCreate(url, UriKind.Absolute, out var uri))
        {
            throw new WebhookRefusedException("The webhook URL is not an absolute URL.");
        }

        Check(uri);
        return uri;
    }

    private void Check(Uri uri)
    {
        bool https = uri.Scheme == Uri.UriSchemeHttps;
        if (!https && !(uri.Scheme == Uri.UriSchemeHttp && _options.AllowLoopbackForTests))
        {
            throw new WebhookRefusedException("The webhook URL must use https.");
        }

        if (uri.UserInfo.Length > 0)
        {
            throw new WebhookRefusedException("The webhook URL must not carry user information.");
        }

        if (uri.HostNameType is not (UriHostNameType.Dns or UriHostNameType.IPv4 or UriHostNameType.IPv6))
        {
            throw new WebhookRefusedException("The webhook URL has no usable host.");
        }

        // IdnHost is the name the handler will connect to (punycode, an IPv6 literal without its brackets), so
        // that one host check serves here and at connect time.
        CheckHost(uri.IdnHost);
    }

    /// <summary>Throws unless <paramref name="host"/> (a name, or an IP literal without brackets) is allowed.</summary>
    private void CheckHost(string host)
    {
        if (IPAddress.TryParse(host, out var literal))
        {
            if (IsForbidden(literal, _options.AllowLoopbackForTests))
            {
                throw new WebhookRefusedException($"The webhook address {literal} is not permitted (loopback, private, link-local or reserved).");
            }

            if (!_exactAddresses.Contains(literal))
            {
                throw new WebhookRefusedException($"The webhook host {literal} is not on this service's allowlist.");
            }

            return;
        }

        string name = host.EndsWith('.') ? host[..^1] : host;
        if (name.Contains(':', StringComparison.Ordinal) || !_exactHosts.Contains(name) && !_suffixes.Exists(suffix => name.Length > suffix.Length && name.EndsWith(suffix, StringComparison.OrdinalIgnoreCase)))
        {
            throw new WebhookRefusedException($"The webhook host {name} is not on this service's allowlist.");
        }
    }

    private void AddAllowedHost(string entry, string parameter)
    {
        string host = entry?.Trim().TrimEnd('.') ?? "";
        if (IPAddress.TryParse(host.Trim('[', ']'), out var address))
        {
            _exactAddresses.Add(address);
            return;
        }

        bool pattern = host.StartsWith("*.", StringComparison.Ordinal);
        string name = pattern ? host[2..] : host;
        try
        {
            // Compared with Uri.IdnHost, so a Unicode entry is held in its punycode form.
            name = name.Length > 0 && !name.Contains('*', StringComparison.Ordinal) && !name.Contains(':', StringComparison.Ordinal) ? Idn.GetAscii(name) : "";
        }
        catch (ArgumentException)
        {
            name = "";
        }

        if (name.Length == 0)
        {
            throw new ArgumentException($"Webhook allowlist entry '{entry}' is neither a host name, an IP address nor a '*.suffix' pattern.", parameter);
        }

        if (pattern)
        {
            _suffixes.Add("." + name); // the dot keeps evilexample.com out of *.example.com
        }
        else
        {
            _exactHosts.Add(name);
        }
    }

    /// <summary>
    /// POSTs <paramref name="jsonBody"/> to <paramref name="url"/>, signed (see <see cref="Sign"/>) and tagged
    /// with <paramref name="eventId"/>, retrying connect failures, timeouts, 408, 429 (after its Retry-After, up
    /// to 60 s) and 5xx with a doubling, jittered backoff, up to <see cref="WebhookOptions.MaxAttempts"/>
    /// attempts. A 2xx answer is a delivery; other answers (redirects included) and a host that resolves only
    /// to forbidden addresses end it at once. The URL is checked again as in <see cref="Validate"/> first.
    /// Never throws but <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> is
    /// cancelled (and <see cref="ArgumentNullException"/> for a null URL): every failure is in the result.
    /// </summary>
    public async Task<WebhookDelivery> DeliverAsync(Uri url, string eventId, ReadOnlyMemory<byte> jsonBody, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(url);
        if (string.IsNullOrEmpty(eventId) || eventId.Length > MaxEventIdLength || !eventId.All(c => c is > ' ' and < '\x7f'))
        {
            return new WebhookDelivery(false, 0, null, "The event id is not a short printable token.");
        }

        try
        {
            if (!Enabled)
            {
                throw new WebhookRefusedException("Webhooks are not configured on this service.");
            }

            if (!url.IsAbsoluteUri || url.OriginalString.Length > MaxUrlLength)
            {
                throw new WebhookRefusedException("The webhook URL is not an absolute URL of at most 2048 characters.");
            }

            Check(url);
        }
        catch (WebhookRefusedException refused)
        {
            LogRefused(_logger, eventId, refused.Message);
            return new WebhookDelivery(false, 0, null, refused.Message);
        }

        int? lastStatus = null;
        string? lastError = null;
        for (int attempt = 1; ; attempt++)
        {
            TimeSpan? retryAfter = null;
            bool retry;
            try
            {
                using var response = await SendOnceAsync(url, eventId, jsonBody, cancellationToken).ConfigureAwait(false);
                int status = (int)response.StatusCode;
                lastStatus = status;
                if (status is >= 200 and < 300)
                {
                    LogDelivered(_logger, eventId, url.Host, attempt, status);
                    return new WebhookDelivery(true, attempt, status, null);
                }

                retry = status is 408 or 429 or >= 500;
                lastError = status is >= 300 and < 400 ? $"The webhook answered HTTP {status}; redirects are not followed." : $"The webhook answered HTTP {status}.";
                if (status == 429)
                {
                    retryAfter = RetryAfter(response.Headers.RetryAfter);
                }

                LogAttemptFailed(_logger, eventId, url.Host, attempt, lastError, null);
            }
            catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
            {
                throw;
            }
            catch (Exception error) when (FindRefusal(error) is { } refused)
            {
                lastError = refused.Message;
                LogRefused(_logger, eventId, refused.Message);
                return new WebhookDelivery(false, attempt, lastStatus, lastError);
            }
            catch (OperationCanceledException error)
            {
                retry = true;
                lastError = $"The webhook did not answer within {_options.TimeoutSeconds.ToString(CultureInfo.InvariantCulture)} s.";
                LogAttemptFailed(_logger, eventId, url.Host, attempt, lastError, error);
            }
            catch (Exception error) when (error is HttpRequestException or IOException or SocketException)
            {
                retry = true;
                lastError = "The webhook could not be reached.";
                LogAttemptFailed(_logger, eventId, url.Host, attempt, lastError, error);
            }
            catch (Exception error)
            {
                // Nothing else is expected; whatever it is, the caller gets a result, not an exception.
                retry = false;
                lastError = "The webhook call failed.";
                LogAttemptFailed(_logger, eventId, url.Host, attempt, lastError, error);
            }

            if (!retry || attempt >= _options.MaxAttempts)
            {
                LogGaveUp(_logger, eventId, url.Host, attempt, lastError);
                return new WebhookDelivery(false, attempt, lastStatus, lastError);
            }

            var wait = RetryDelay(attempt, retryAfter, _options.FirstRetrySeconds, Random.Shared.NextDouble());
            await Task.Delay(wait, _time, cancellationToken).ConfigureAwait(false);
        }
    }

    private async Task<HttpResponseMessage> SendOnceAsync(Uri url, string eventId, ReadOnlyMemory<byte> jsonBody, CancellationToken cancellationToken)
    {
        using var timeout = new CancellationTokenSource(_timeout, _time);
        using var linked = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, timeout.Token);
        using var request = new HttpRequestMessage(HttpMethod.Post, url)
        {
            // HTTP/1.1 or 2 only: HTTP/3 runs over QUIC, which would not pass through ConnectAsync.
            Version = HttpVersion.Version11,
            VersionPolicy = HttpVersionPolicy.RequestVersionOrLower,
            Content = new ReadOnlyMemoryContent(jsonBody),
        };
        request.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        request.Headers.Add("X-Cvrl-Event", eventId);
        request.Headers.Add("X-Cvrl-Signature", Sign(_options.Secret!, _time.GetUtcNow().ToUnixTimeSeconds(), jsonBody.Span));
        return await _client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, linked.Token).ConfigureAwait(false);
    }

    private static WebhookRefusedException? FindRefusal(Exception? error)
    {
        for (; error is not null; error = error.InnerException)
        {
            if (error is WebhookRefusedException refused)
            {
                return refused;
            }
        }

        return null;
    }

    private TimeSpan? RetryAfter(RetryConditionHeaderValue? header) => header switch
    {
        { Delta: { } delta } => delta,
        { Date: { } date } => date - _time.GetUtcNow(),
        _ => null,
    };

    /// <summary>
    /// The wait after failed attempt <paramref name="attempt"/> (1-based): the server's Retry-After when it gave
    /// one, else <paramref name="firstSeconds"/> doubled per attempt, between half and all of that
    /// (<paramref name="jitter"/> in [0, 1) picks where); both capped at 60 s.
    /// </summary>
    internal static TimeSpan RetryDelay(int attempt, TimeSpan? retryAfter, double firstSeconds, double jitter)
    {
        if (retryAfter is { } after)
        {
            return after < TimeSpan.Zero ? TimeSpan.Zero : after > MaxWait ? MaxWait : after;
        }

        double full = Math.Min(firstSeconds * Math.Pow(2, Math.Min(attempt - 1, 30)), MaxWait.TotalSeconds);
        return TimeSpan.FromSeconds(full * (0.5 + (0.5 * Math.Clamp(jitter, 0, 1))));
    }

    /// <summary>
    /// <c>t=&lt;unixSeconds&gt;,v1=&lt;hex&gt;</c>, the hex being the lower-case HMAC-SHA256, keyed with the UTF-8
    /// of <paramref name="secret"/>, of the UTF-8 of <c>"&lt;unixSeconds&gt;."</c> followed by
    /// <paramref name="body"/>. A receiver recomputes it over the raw body and compares in constant time.
    /// </summary>
    public static string Sign(string secret, long unixSeconds, ReadOnlySpan<byte> body)
    {
        ArgumentException.ThrowIfNullOrEmpty(secret);
        string timestamp = unixSeconds.ToString(CultureInfo.InvariantCulture);
        using var hmac = IncrementalHash.CreateHMAC(HashAlgorithmName.SHA256, Encoding.UTF8.GetBytes(secret));
        hmac.AppendData(Encoding.UTF8.GetBytes(timestamp + "."));
        hmac.AppendData(body);
        return $"t={timestamp},v1={Convert.ToHexStringLower(hmac.GetHashAndReset())}";
    }

    public void Dispose() => _client.Dispose();

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook {EventId} delivered to {Host} on attempt {Attempt} (HTTP {Status})")]
    private static partial void LogDelivered(ILogger logger, string eventId, string host, int attempt, int status);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook {EventId} to {Host}: attempt {Attempt} failed: {Reason}")]
    private static partial void LogAttemptFailed(ILogger logger, string eventId, string host, int attempt, string reason, Exception? error);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook {EventId} to {Host} not delivered after {Attempts} attempt(s): {Reason}")]
    private static partial void LogGaveUp(ILogger logger, string eventId, string host, int attempts, string? reason);

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook {EventId} refused: {Reason}")]
    private static partial void LogRefused(ILogger logger, string eventId, string reason);
}
