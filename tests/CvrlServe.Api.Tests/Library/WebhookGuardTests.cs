using System.Net;
using CvrlServe.Api.Library;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace CvrlServe.Api.Tests.Library;

/// <summary>The SSRF guard: what <see cref="WebhookSender.Validate"/> refuses, and what delivery refuses to dial.</summary>
public sealed partial class WebhookTests
{
    private static WebhookSender Offline(WebhookOptions options) => new(options, new TableResolver((_, _) => throw new InvalidOperationException("no lookups here")), NullLogger<WebhookSender>.Instance);

    [Theory]
    [InlineData("https://evil.test/hook")]
    [InlineData("https://example.com/hook")]
    [InlineData("https://evilexample.com/hook")]
    [InlineData("https://a.example.com.evil.test/hook")]
    [InlineData("https://hooks.test.evil.test/hook")]
    public void Validate_HostNotOnAllowlist_Refused(string url)
    {
        var sender = NewSender();

        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate(url));

        Assert.Contains("not on this service's allowlist", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://hooks.test/hook")]
    [InlineData("https://HOOKS.Test:8443/a/b?c=d")]
    [InlineData("https://hooks.test./hook")]
    [InlineData("https://a.example.com/hook")]
    [InlineData("https://A.b.EXAMPLE.com/hook")]
    [InlineData("https://bücher.example/hook")]
    [InlineData("https://xn--bcher-kva.example/hook")]
    [InlineData("https://a.bücher.example.org/hook")]
    public void Validate_AllowedHost_Accepted(string url) =>
        Assert.Equal(new Uri(url), NewSender(allowLoopback: false, hosts: [Host, "*.example.com", "bücher.example", "*.xn--bcher-kva.example.org"]).Validate(url));

    [Theory]
    [InlineData("https://[fe80::1%25eth0]/hook")]
    [InlineData("https://[fe80::1]/hook")]
    public void Validate_ScopedIpv6Literal_Refused(string url) =>
        Assert.Throws<WebhookRefusedException>(() => NewSender(hosts: ["fe80::1", "fe80::1%25eth0", "fe80::1%eth0"]).Validate(url));

    [Theory]
    [InlineData("https://10.0.0.1/hook")]
    [InlineData("https://169.254.169.254/latest/meta-data/")]
    [InlineData("https://[::ffff:127.0.0.1]/hook")]
    [InlineData("https://[::ffff:a9fe:a9fe]/hook")]
    [InlineData("https://[fe80::1]/hook")]
    [InlineData("https://[fc00::1]/hook")]
    [InlineData("https://0.0.0.0/hook")]
    public void Validate_ForbiddenIpLiteral_RefusedEvenWhenListed(string url)
    {
        // Listed on purpose: the address rules refuse these, not the allowlist. Loopback allowed too.
        var sender = NewSender(hosts: ["10.0.0.1", "169.254.169.254", "::ffff:127.0.0.1", "::ffff:169.254.169.254", "fe80::1", "fc00::1", "0.0.0.0"]);

        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate(url));

        Assert.Contains("is not permitted", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("https://[::1]/hook")]
    [InlineData("https://127.0.0.1/hook")]
    [InlineData("https://127.1.2.3/hook")]
    [InlineData("https://2130706433/hook")]
    [InlineData("https://0x7f.1/hook")]
    public void Validate_LoopbackLiteral_RefusedWithoutTheTestAllowance(string url)
    {
        var sender = NewSender(allowLoopback: false, hosts: ["::1", "127.0.0.1", "127.1.2.3"]);

        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate(url));

        Assert.Contains("is not permitted", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_PublicIpLiteral_AcceptedOnlyWhenListed()
    {
        var sender = NewSender(allowLoopback: false, hosts: ["93.184.216.34", "2606:4700::1111"]);

        Assert.Equal("93.184.216.34", sender.Validate("https://93.184.216.34/hook").Host);
        Assert.Equal("[2606:4700::1111]", sender.Validate("https://[2606:4700::1111]:8443/hook").Host);
        Assert.Throws<WebhookRefusedException>(() => sender.Validate("https://8.8.8.8/hook"));
    }

    [Theory]
    [InlineData("https://user:pass@hooks.test/hook", "user information")]
    [InlineData("https://user@hooks.test/hook", "user information")]
    [InlineData("http://hooks.test/hook", "https")]
    [InlineData("ftp://hooks.test/hook", "https")]
    [InlineData("file:///etc/passwd", "https")]
    [InlineData("/hook", "https")]
    [InlineData("hooks.test/hook", "absolute")]
    [InlineData("", "empty")]
    public void Validate_MalformedOrUnsafeUrl_Refused(string url, string fragment)
    {
        var sender = NewSender(allowLoopback: false);

        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate(url));

        Assert.Contains(fragment, error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Validate_LongerThan2048_Refused()
    {
        var sender = NewSender(allowLoopback: false);
        string prefix = "https://hooks.test/";

        Assert.NotNull(sender.Validate(prefix + new string('a', 2048 - prefix.Length)));
        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate(prefix + new string('a', 2049 - prefix.Length)));
        Assert.Contains("2048", error.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(true, false)]
    [InlineData(false, true)]
    [InlineData(false, false)]
    public async Task NotConfigured_ValidateAndDeliverRefuse(bool withHosts, bool withSecret)
    {
        using var sender = Offline(new WebhookOptions { AllowedHosts = withHosts ? [Host] : [], Secret = withSecret ? Secret : null });

        Assert.False(sender.Enabled);
        var error = Assert.Throws<WebhookRefusedException>(() => sender.Validate("https://hooks.test/hook"));
        Assert.Contains("not configured", error.Message, StringComparison.Ordinal);
        var delivery = await sender.DeliverAsync(new Uri("https://hooks.test/hook"), "evt", Body, CancellationToken.None);
        Assert.Equal(new WebhookDelivery(false, 0, null, error.Message), delivery);
    }

    [Theory]
    [InlineData("*")]
    [InlineData("*.")]
    [InlineData("a.*.com")]
    [InlineData("*example.com")]
    [InlineData(" ")]
    [InlineData("a b.com")]
    [InlineData("a/b.com")]
    public void Constructor_MalformedAllowlistEntry_Throws(string entry) =>
        Assert.Throws<ArgumentException>(() => Offline(new WebhookOptions { AllowedHosts = [entry], Secret = Secret }));

    [Fact]
    public async Task Deliver_HostNotOnAllowlist_RefusedBeforeAnyLookup()
    {
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { ["evil.test"] = [IPAddress.Loopback] });
        var sender = NewSender(resolver);

        var delivery = await sender.DeliverAsync(new Uri($"http://evil.test:{_receiver.Port}/hook"), "evt", Body, CancellationToken.None);

        Assert.False(delivery.Delivered);
        Assert.Equal(0, delivery.Attempts);
        Assert.Contains("allowlist", delivery.LastError, StringComparison.Ordinal);
        Assert.Empty(resolver.Asked);
        Assert.Empty(_connector.Connects);
        Assert.Empty(_receiver.Requests);
    }

    [Theory]
    [InlineData("10.1.2.3")]
    [InlineData("169.254.169.254")]
    [InlineData("192.168.1.10")]
    [InlineData("::ffff:127.0.0.1")]
    [InlineData("::ffff:10.0.0.1")]
    [InlineData("fe80::1")]
    [InlineData("64:ff9b::a9fe:a9fe")]
    [InlineData("2002:a00:1::1")]
    public async Task Deliver_ResolverAnswersForbiddenAddress_RefusedWithoutConnecting(string answer)
    {
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { [Host] = [IPAddress.Parse(answer)] });
        var sender = NewSender(resolver);
        var url = sender.Validate(HookUrl);
        Assert.Empty(resolver.Asked); // Validate never resolves.

        var delivery = await sender.DeliverAsync(url, "evt_private", Body, CancellationToken.None);

        Assert.False(delivery.Delivered);
        Assert.Equal(1, delivery.Attempts); // not retried
        Assert.Contains("not permitted", delivery.LastError, StringComparison.Ordinal);
        Assert.Equal([Host], resolver.Asked);
        Assert.Empty(_connector.Connects);
        Assert.Empty(_receiver.Requests);
        Assert.Contains(_log.Entries, e => e.Level == LogLevel.Warning && e.Message.Contains("forbidden addresses", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Deliver_DnsRebinding_AnswerAtDeliveryIsTheOneChecked()
    {
        // A rebinding name: a loopback (allowed here) answer first, a private one on every later lookup.
        var resolver = new TableResolver((_, call) => call == 1 ? [IPAddress.Loopback] : [IPAddress.Parse("10.1.2.3")]);
        var sender = NewSender(resolver);
        var url = sender.Validate(HookUrl);

        Assert.True((await sender.DeliverAsync(url, "evt_1", Body, CancellationToken.None)).Delivered);
        // A fresh sender has no pooled connection: its lookup is the rebound one, and it never dials 10.1.2.3.
        var later = NewSender(resolver);
        var delivery = await later.DeliverAsync(url, "evt_2", Body, CancellationToken.None);

        Assert.False(delivery.Delivered);
        Assert.Contains("not permitted", delivery.LastError, StringComparison.Ordinal);
        Assert.Equal(2, resolver.Asked.Count);
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, _receiver.Port)], _connector.Connects);
        Assert.Single(_receiver.Requests);
    }

    [Fact]
    public async Task Deliver_MixedAnswer_ConnectsOnlyToTheAllowedAddress()
    {
        var resolver = new TableResolver(new Dictionary<string, IPAddress[]> { [Host] = [IPAddress.Parse("10.0.0.1"), IPAddress.Parse("169.254.169.254"), IPAddress.Loopback] });
        var sender = NewSender(resolver);

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt_mixed", Body, CancellationToken.None);

        Assert.True(delivery.Delivered);
        Assert.Equal([new IPEndPoint(IPAddress.Loopback, _receiver.Port)], _connector.Connects);
    }

    [Fact]
    public async Task Deliver_MalformedEventId_NotSent()
    {
        var sender = NewSender();

        var delivery = await sender.DeliverAsync(sender.Validate(HookUrl), "evt\r\nX-Injected: 1", Body, CancellationToken.None);

        Assert.Equal(0, delivery.Attempts);
        Assert.Empty(_receiver.Requests);
    }

    [Theory]
    // IPv4
    [InlineData("0.0.0.0", true)]
    [InlineData("0.1.2.3", true)]
    [InlineData("10.0.0.1", true)]
    [InlineData("10.255.255.255", true)]
    [InlineData("100.63.255.255", false)]
    [InlineData("100.64.0.1", true)]
    [InlineData("100.127.255.255", true)]
    [InlineData("100.128.0.0", false)]
    [InlineData("127.0.0.1", true)]
    [InlineData("127.255.0.1", true)]
    [InlineData("169.254.169.254", true)]
    [InlineData("169.253.1.1", false)]
    [InlineData("172.15.255.255", false)]
    [InlineData("172.16.0.1", true)]
    [InlineData("172.31.255.255", true)]
    [InlineData("172.32.0.0", false)]
    [InlineData("192.0.0.8", true)]
    [InlineData("192.168.0.1", true)]
    [InlineData("198.18.0.1", true)]
    [InlineData("198.19.255.255", true)]
    [InlineData("198.20.0.0", false)]
    [InlineData("224.0.0.1", true)]
    [InlineData("239.255.255.250", true)]
    [InlineData("240.0.0.1", true)]
    [InlineData("255.255.255.255", true)]
    [InlineData("8.8.8.8", false)]
    [InlineData("1.1.1.1", false)]
    [InlineData("93.184.216.34", false)]
    [InlineData("223.255.255.255", false)]
    // IPv6
    [InlineData("::", true)]
    [InlineData("::1", true)]
    [InlineData("fe80::1", true)]
    [InlineData("febf::1", true)]
    [InlineData("fec0::1", true)]
    [InlineData("fc00::1", true)]
    [InlineData("fd12:3456::1", true)]
    [InlineData("ff02::1", true)]
    [InlineData("ff0e::1", true)]
    [InlineData("2001::1", true)]
    [InlineData("2001:0:4136:e378:8000:63bf:3fff:fdd2", true)]
    [InlineData("2001:db8::1", true)]
    [InlineData("2606:4700::1111", false)]
    [InlineData("2001:4860:4860::8888", false)]
    [InlineData("2a00:1450:4001::1", false)]
    // IPv4 in IPv6: judged by the embedded address
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("::ffff:10.0.0.1", true)]
    [InlineData("::ffff:169.254.169.254", true)]
    [InlineData("::ffff:0.0.0.0", true)]
    [InlineData("::ffff:8.8.8.8", false)]
    [InlineData("::ffff:0:10.0.0.1", true)]
    [InlineData("::ffff:0:8.8.8.8", false)]
    [InlineData("::127.0.0.1", true)]
    [InlineData("::10.0.0.1", true)]
    [InlineData("::8.8.8.8", true)]
    [InlineData("64:ff9b::10.0.0.1", true)]
    [InlineData("64:ff9b::127.0.0.1", true)]
    [InlineData("64:ff9b::a9fe:a9fe", true)]
    [InlineData("64:ff9b::8.8.8.8", false)]
    [InlineData("64:ff9b:1::8.8.8.8", true)]
    [InlineData("2002:a00:1::1", true)]
    [InlineData("2002:7f00:1::1", true)]
    [InlineData("2002:a9fe:a9fe::1", true)]
    [InlineData("2002:c0a8:101::1", true)]
    [InlineData("2002:808:808::1", false)]
    public void IsForbidden_AddressTable(string address, bool forbidden) => Assert.Equal(forbidden, WebhookSender.IsForbidden(IPAddress.Parse(address), allowLoopback: false));

    [Theory]
    [InlineData("127.0.0.1", false)]
    [InlineData("127.9.9.9", false)]
    [InlineData("::1", false)]
    [InlineData("::ffff:127.0.0.1", true)]
    [InlineData("64:ff9b::127.0.0.1", true)]
    [InlineData("2002:7f00:1::1", true)]
    [InlineData("::127.0.0.1", true)]
    [InlineData("10.0.0.1", true)]
    [InlineData("169.254.169.254", true)]
    [InlineData("fe80::1", true)]
    [InlineData("0.0.0.0", true)]
    [InlineData("::", true)]
    public void IsForbidden_TestAllowance_PermitsPlainLoopbackOnly(string address, bool forbidden) =>
        Assert.Equal(forbidden, WebhookSender.IsForbidden(IPAddress.Parse(address), allowLoopback: true));

    [Fact]
    public void IsForbidden_ScopedLinkLocal_Forbidden() =>
        Assert.True(WebhookSender.IsForbidden(new IPAddress(IPAddress.Parse("fe80::1").GetAddressBytes(), scopeid: 2), allowLoopback: true));

    [Fact]
    public void RetryDelay_DoublesWithJitter_CappedAt60Seconds()
    {
        Assert.Equal(TimeSpan.FromSeconds(1), WebhookSender.RetryDelay(1, null, 2, 0));
        Assert.Equal(TimeSpan.FromSeconds(2), WebhookSender.RetryDelay(1, null, 2, 1));
        Assert.Equal(TimeSpan.FromSeconds(4), WebhookSender.RetryDelay(3, null, 2, 0));
        Assert.Equal(TimeSpan.FromSeconds(8), WebhookSender.RetryDelay(3, null, 2, 1));
        Assert.Equal(TimeSpan.FromSeconds(60), WebhookSender.RetryDelay(10, null, 2, 1));
        Assert.Equal(TimeSpan.FromSeconds(60), WebhookSender.RetryDelay(int.MaxValue, null, 2, 1));
        Assert.Equal(TimeSpan.FromSeconds(5), WebhookSender.RetryDelay(1, TimeSpan.FromSeconds(5), 2, 0.5));
        Assert.Equal(TimeSpan.FromSeconds(60), WebhookSender.RetryDelay(1, TimeSpan.FromHours(1), 2, 0.5));
        Assert.Equal(TimeSpan.Zero, WebhookSender.RetryDelay(1, TimeSpan.FromSeconds(-3), 2, 0.5));
    }
}
