using System.Security.Claims;
using System.Security.Cryptography;
using System.Text;
using System.Text.Encodings.Web;
using Microsoft.AspNetCore.Authentication;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Hosting;

/// <summary>
/// API keys as an ASP.NET Core authentication scheme: <c>X-Api-Key: KEY</c> or <c>Authorization: Bearer KEY</c>.
/// A configured admin key authenticates with role <c>admin</c>, a client key with role <c>client</c>; the
/// identity's name is a short hash of the key (what rate limiting and logs use; the key itself is never
/// logged). Keys are compared in constant time. Challenges and refusals answer problem+json 401 and 403.
/// </summary>
public sealed class ApiKeyHandler(IOptionsMonitor<AuthenticationSchemeOptions> schemeOptions, ILoggerFactory logger, UrlEncoder encoder, IOptions<CvrlServeOptions> options)
    : AuthenticationHandler<AuthenticationSchemeOptions>(schemeOptions, logger, encoder)
{
    public const string SchemeName = "ApiKey";
    public const string HeaderName = "X-Api-Key";
    public const string AdminPolicy = "admin";
    public const string ClientPolicy = "client";

    private readonly (byte[] Hash, string Role)[] _keys = options.Value.Keys.Admin.Select(k => (Hash(k), "admin"))
        .Concat(options.Value.Keys.Clients.Select(k => (Hash(k), "client"))).ToArray();

    protected override Task<AuthenticateResult> HandleAuthenticateAsync()
    {
        string? key = Request.Headers[HeaderName].FirstOrDefault();
        if (key is null && Request.Headers.Authorization.FirstOrDefault() is { } authorization && authorization.StartsWith("Bearer ", StringComparison.OrdinalIgnoreCase))
        {
            key = authorization["Bearer ".Length..].Trim();
        }

        if (string.IsNullOrEmpty(key))
        {
            return Task.FromResult(AuthenticateResult.NoResult());
        }

        byte[] hash = Hash(key);
        string? role = null;
        foreach (var (known, knownRole) in _keys)
        {
            // Every key is compared, so the time taken says nothing about which one matched.
            if (CryptographicOperations.FixedTimeEquals(hash, known))
            {
                role ??= knownRole;
            }
        }

        if (role is null)
        {
            return Task.FromResult(AuthenticateResult.Fail("unknown API key"));
        }

        var identity = new ClaimsIdentity(
            [new Claim(ClaimTypes.Name, "key:" + Convert.ToHexStringLower(hash)[..12]), new Claim(ClaimTypes.Role, role)], SchemeName);
        return Task.FromResult(AuthenticateResult.Success(new AuthenticationTicket(new ClaimsPrincipal(identity), SchemeName)));
    }

    protected override Task HandleChallengeAsync(AuthenticationProperties properties) =>
        Problems.WriteAsync(Context, Problems.Create(StatusCodes.Status401Unauthorized, "unauthorized", "API key required",
            $"Send a valid API key in the {HeaderName} header (or Authorization: Bearer)."), null);

    protected override Task HandleForbiddenAsync(AuthenticationProperties properties) =>
        Problems.WriteAsync(Context, Problems.Create(StatusCodes.Status403Forbidden, "forbidden", "Not allowed",
            "This API key may not do this: it needs an admin key."), null);

    private static byte[] Hash(string key) => SHA256.HashData(Encoding.UTF8.GetBytes(key));
}
