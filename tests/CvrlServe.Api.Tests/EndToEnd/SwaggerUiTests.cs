using System.Net;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// Swagger UI works in a browser: headless Chromium (Debian's <c>chromium</c>, installed by tools/test.sh)
/// loads /swagger/index.html from the running server, runs its scripts (which fetch the OpenAPI document),
/// and prints the resulting DOM, which must hold one rendered operation per operation in the document.
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed partial class SwaggerUiTests(EndToEndServer fixture)
{
    [Fact]
    public async Task SwaggerUi_InHeadlessChromium_RendersEveryOperationOfTheServedDocument()
    {
        using var client = fixture.Server.Client();
        using var index = await client.GetAsync(new Uri("swagger/index.html", UriKind.Relative));
        Assert.Equal(HttpStatusCode.OK, index.StatusCode);
        using var document = JsonDocument.Parse(await client.GetStringAsync(new Uri("swagger/v1/swagger.json", UriKind.Relative)));
        var operations = document.RootElement.GetProperty("paths").EnumerateObject()
            .SelectMany(path => path.Value.EnumerateObject().Where(o => o.Name is "get" or "post" or "put" or "patch" or "delete").Select(_ => path.Name))
            .Order(StringComparer.Ordinal).ToArray();
        Assert.Contains("/v1/embeddings", operations);

        string dom = await DumpDomAsync(new Uri(fixture.Server.BaseAddress, "swagger/index.html"));

        // Present only once Swagger UI's scripts have fetched the document and rendered it.
        var rendered = RenderedPath().Matches(dom).Select(m => m.Groups[1].Value).Order(StringComparer.Ordinal).ToArray();
        Assert.True(rendered.Length > 0, $"Swagger UI rendered no operation. The DOM:\n{dom[..Math.Min(dom.Length, 4000)]}");
        Assert.Equal(operations, rendered);
        Assert.Contains("/v1/classify", rendered);
        Assert.Contains("/v1/models", rendered);
        Assert.Contains("/v1/probes", rendered);
        Assert.Contains("Self-supervised video embeddings", dom, StringComparison.Ordinal);
    }

    [GeneratedRegex("""class="opblock-summary-path" data-path="([^"]+)"\s*>""")]
    private static partial Regex RenderedPath();

    private static async Task<string> DumpDomAsync(Uri page)
    {
        var profile = Directory.CreateTempSubdirectory("cvrl-chromium-");
        try
        {
            byte[] stdout = [];
            var result = await ToolProcess.RunAsync("chromium",
                ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=" + profile.FullName, "--virtual-time-budget=10000", "--dump-dom", page.ToString()],
                async (stream, ct) => stdout = await ToolProcess.ReadCappedAsync(stream, 16 << 20, () => new InvalidOperationException("DOM over 16 MB"), ct),
                TimeSpan.FromSeconds(90), "chromium");
            Assert.True(result.ExitCode == 0, $"chromium exited with {result.ExitCode}: {string.Join('\n', result.StderrTail)}");
            return Encoding.UTF8.GetString(stdout);
        }
        finally
        {
            profile.Delete(recursive: true);
        }
    }
}
