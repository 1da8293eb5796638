using System.Net;
using System.Net.Sockets;

namespace CvrlServe.Api.Library;

public sealed partial class WebhookSender
{
    /// <summary>
    /// The handler's only way onto the network: checks the host against the allowlist, resolves it (an IP
    /// literal is taken as it is), drops every forbidden address and connects to the first remaining one that
    /// answers. When no address is left, throws <see cref="WebhookRefusedException"/> and nothing is dialled.
    /// </summary>
    private async ValueTask<Stream> ConnectAsync(SocketsHttpConnectionContext context, CancellationToken cancellationToken)
    {
        string host = context.DnsEndPoint.Host.Trim('[', ']');
        int port = context.DnsEndPoint.Port;
        CheckHost(host);
        var addresses = IPAddress.TryParse(host, out var literal) ? [literal] : await _resolver.ResolveAsync(host, cancellationToken).ConfigureAwait(false);
        var allowed = addresses.Where(a => !IsForbidden(a, _options.AllowLoopbackForTests)).ToList();
        if (allowed.Count == 0)
        {
            if (addresses.Length == 0)
            {
                throw new SocketException((int)SocketError.HostNotFound);
            }

            string refusedList = string.Join(", ", addresses.Select(a => a.ToString()));
            LogForbiddenAddresses(_logger, host, refusedList);
            throw new WebhookRefusedException($"The webhook host {host} resolves only to addresses that are not permitted (loopback, private, link-local or reserved).");
        }

        if (allowed.Count < addresses.Length)
        {
            LogSomeAddressesDropped(_logger, host, addresses.Length - allowed.Count);
        }

        Exception? last = null;
        foreach (var address in allowed)
        {
            var endpoint = new IPEndPoint(address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address, port);
            try
            {
                return _connect is null ? await ConnectSocketAsync(endpoint, cancellationToken).ConfigureAwait(false)
                    : await _connect(endpoint, cancellationToken).ConfigureAwait(false);
            }
            catch (Exception error) when (error is SocketException or IOException && !cancellationToken.IsCancellationRequested)
            {
                last = error;
            }
        }

        throw new IOException($"Could not connect to any allowed address of {host}.", last);
    }

    private static async ValueTask<Stream> ConnectSocketAsync(IPEndPoint endpoint, CancellationToken cancellationToken)
    {
        var socket = new Socket(endpoint.AddressFamily, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(endpoint, cancellationToken).ConfigureAwait(false);
            return new NetworkStream(socket, ownsSocket: true);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// True for an address a webhook must never reach. IPv4: 0.0.0.0/8, 10/8, 100.64/10 (carrier-grade NAT),
    /// 127/8 (loopback), 169.254/16 (link-local), 172.16/12, 192.0.0/24, 192.168/16, 198.18/15 (benchmarking),
    /// 224/4 (multicast) and 240/4 (reserved, 255.255.255.255 included). IPv6 is judged fail-closed: only global
    /// unicast 2000::/3 is allowed, less Teredo 2001::/32, documentation 2001:db8::/32 and any 6to4 2002::/16
    /// whose embedded IPv4 address is forbidden; beside it only the forms that carry an IPv4 address, judged by
    /// that address: IPv4-mapped <c>::ffff:a.b.c.d</c>, IPv4-translated <c>::ffff:0:a.b.c.d</c> and NAT64
    /// <c>64:ff9b::a.b.c.d</c>. So <c>::</c>, <c>::1</c>, the deprecated IPv4-compatible <c>::a.b.c.d</c>,
    /// fe80::/10, fec0::/10, fc00::/7, ff00::/8 and the local-use NAT64 64:ff9b:1::/48 are all forbidden.
    /// <paramref name="allowLoopback"/> (tests only) permits 127/8 and ::1 as such, never loopback embedded in
    /// another form: a real resolver answers 127.0.0.1 itself, so a disguised one is an attack.
    /// </summary>
    public static bool IsForbidden(IPAddress address, bool allowLoopback)
    {
        ArgumentNullException.ThrowIfNull(address);
        Span<byte> b = stackalloc byte[16];
        if (!address.TryWriteBytes(b, out int length))
        {
            return true;
        }

        if (address.AddressFamily == AddressFamily.InterNetwork && length == 4)
        {
            return IsForbiddenV4(b[..4], allowLoopback);
        }

        if (address.AddressFamily != AddressFamily.InterNetworkV6 || length != 16)
        {
            return true;
        }

        if (address.Equals(IPAddress.IPv6Loopback))
        {
            return !allowLoopback;
        }

        bool firstEightZero = b[..8].IndexOfAnyExcept((byte)0) < 0;
        if (firstEightZero && b[8] == 0 && b[9] == 0 && b[10] == 0xff && b[11] == 0xff)
        {
            return IsForbiddenV4(b[12..], allowLoopback: false); // ::ffff:a.b.c.d, mapped
        }

        if (firstEightZero && b[8] == 0xff && b[9] == 0xff && b[10] == 0 && b[11] == 0)
        {
            return IsForbiddenV4(b[12..], allowLoopback: false); // ::ffff:0:a.b.c.d, translated
        }

        if (b[0] == 0x00 && b[1] == 0x64 && b[2] == 0xff && b[3] == 0x9b && b[4..12].IndexOfAnyExcept((byte)0) < 0)
        {
            return IsForbiddenV4(b[12..], allowLoopback: false); // 64:ff9b::a.b.c.d, well-known NAT64
        }

        if ((b[0] & 0xe0) != 0x20)
        {
            return true; // outside global unicast 2000::/3
        }

        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x00 && b[3] == 0x00)
        {
            return true; // Teredo 2001::/32
        }

        if (b[0] == 0x20 && b[1] == 0x01 && b[2] == 0x0d && b[3] == 0xb8)
        {
            return true; // documentation 2001:db8::/32
        }

        if (b[0] == 0x20 && b[1] == 0x02)
        {
            return IsForbiddenV4(b[2..6], allowLoopback: false); // 6to4 2002:a.b.c.d::/48
        }

        return false;
    }

    private static bool IsForbiddenV4(ReadOnlySpan<byte> b, bool allowLoopback) => (b[0], b[1], b[2]) switch
    {
        (0, _, _) => true,                          // 0.0.0.0/8, "this network"
        (10, _, _) => true,                         // 10/8, private
        (100, >= 64 and < 128, _) => true,          // 100.64/10, carrier-grade NAT
        (127, _, _) => !allowLoopback,              // 127/8, loopback
        (169, 254, _) => true,                      // 169.254/16, link-local (cloud metadata)
        (172, >= 16 and < 32, _) => true,           // 172.16/12, private
        (192, 0, 0) => true,                        // 192.0.0/24, IETF protocol assignments
        (192, 168, _) => true,                      // 192.168/16, private
        (198, 18 or 19, _) => true,                 // 198.18/15, benchmarking
        ( >= 224, _, _) => true,                    // 224/4 multicast, 240/4 reserved, 255.255.255.255
        _ => false,
    };

    [LoggerMessage(Level = LogLevel.Warning, Message = "Webhook host {Host} resolved only to forbidden addresses ({Addresses}); not connecting")]
    private static partial void LogForbiddenAddresses(ILogger logger, string host, string addresses);

    [LoggerMessage(Level = LogLevel.Information, Message = "Webhook host {Host}: {Count} forbidden address(es) dropped from its DNS answer")]
    private static partial void LogSomeAddressesDropped(ILogger logger, string host, int count);
}
