using System.Text;
using CvrlServe.Core.Video;
using Xunit.Abstractions;

namespace CvrlServe.Api.Tests.EndToEnd;

/// <summary>
/// The OpenAPI document is a contract a client can be built from: during the run, the document the running
/// server serves goes through the NSwag CLI (a local dotnet tool, <c>.config/dotnet-tools.json</c>) into a
/// C# client, which is compiled with a small program in a console project under the system temp folder
/// (outside the repository's build settings) and run against the server: it uploads videos through the
/// generated multipart methods and reads typed answers and typed problems.
/// </summary>
[Collection(SharedEndToEndServer.Name)]
public sealed class GeneratedClientTests(EndToEndServer fixture, ITestOutputHelper output)
{
    private const string Project = """
        <Project Sdk="Microsoft.NET.Sdk">
          <PropertyGroup>
            <OutputType>Exe</OutputType>
            <TargetFramework>net10.0</TargetFramework>
            <ImplicitUsings>enable</ImplicitUsings>
            <Nullable>disable</Nullable>
          </PropertyGroup>
        </Project>
        """;

    // Args: base URL, probe, a red video, a blue video. One "key=value" line per fact checked by the test.
    private const string Program = """
        using Generated;

        using var http = new HttpClient();
        var client = new CvrlClient(args[0], http);

        var models = await client.ListModelsAsync();
        Console.WriteLine($"defaultModel={models.DefaultModel}");

        await using (var video = File.OpenRead(args[2]))
        {
            var embedding = await client.EmbedAsync(new FileParameter(video, "red.mp4", "video/mp4"), null, 3, true);
            Console.WriteLine($"dimension={embedding.Dimension}");
            Console.WriteLine($"length={embedding.Embedding.Count}");
            Console.WriteLine(FormattableString.Invariant($"norm={Math.Sqrt(embedding.Embedding.Sum(v => (double)v * v)):F4}"));
            Console.WriteLine($"clips={embedding.Clips.Count}");
        }

        foreach (var (name, path) in new[] { ("red", args[2]), ("blue", args[3]) })
        {
            await using var video = File.OpenRead(path);
            var result = await client.ClassifyAsync(new FileParameter(video, name + ".mp4", "video/mp4"), args[1], null, 1, true, null, null);
            Console.WriteLine($"{name}.top={result.Labels.Single().Label}");
            Console.WriteLine($"{name}.classes={result.Classes.Count}");
        }

        try
        {
            await using var video = File.OpenRead(args[2]);
            await client.ClassifyAsync(new FileParameter(video, "red.mp4", "video/mp4"), "no-such-probe", null, null, null, null, null);
            Console.WriteLine("missing=answered");
        }
        catch (ApiException<ProblemDetails> e)
        {
            Console.WriteLine($"missing={e.StatusCode} {e.Result.Type}");
        }
        """;

    private static readonly TimeSpan StepTimeout = TimeSpan.FromMinutes(3);

    [Fact]
    public async Task ClientGeneratedFromTheServedDocument_EmbedsAndClassifiesThroughMultipart()
    {
        // The probe trains on the server while the client is generated and built here.
        var probe = fixture.SharedProbeAsync();
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var folder = Directory.CreateTempSubdirectory("cvrl-generated-client-");
        try
        {
            using (var client = fixture.Server.Client())
            {
                await File.WriteAllTextAsync(Path.Combine(folder.FullName, "openapi.json"), await client.GetStringAsync(new Uri("swagger/v1/swagger.json", UriKind.Relative)));
            }

            // dotnet tool run finds the manifest from its working directory: the repository's.
            await RunAsync(RepositoryRoot(), "dotnet", "tool", "run", "nswag", "openapi2csclient",
                "/input:" + Path.Combine(folder.FullName, "openapi.json"), "/output:" + Path.Combine(folder.FullName, "CvrlClient.cs"),
                "/namespace:Generated", "/className:CvrlClient", "/jsonLibrary:SystemTextJson", "/generateClientInterfaces:false");
            output.WriteLine($"generated: {clock.Elapsed.TotalSeconds:F1} s");
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "ClientCheck.csproj"), Project);
            await File.WriteAllTextAsync(Path.Combine(folder.FullName, "Program.cs"), Program);

            // No build servers: nothing may outlive the test. No Directory.*.props from above the temp folder.
            await RunAsync(folder.FullName, "dotnet", "build", "ClientCheck.csproj", "-c", "Release", "-o", "out", "--disable-build-servers", "-nologo", "-v:q",
                "-p:ImportDirectoryBuildProps=false", "-p:ImportDirectoryBuildTargets=false", "-p:ImportDirectoryPackagesProps=false");
            output.WriteLine($"built: {clock.Elapsed.TotalSeconds:F1} s");
            string printed = await RunAsync(folder.FullName, "dotnet", Path.Combine("out", "ClientCheck.dll"),
                fixture.Server.BaseAddress.ToString(), await probe, fixture.Videos.Path("red-1.mp4"), fixture.Videos.Path("blue-1.mp4"));

            output.WriteLine($"ran: {clock.Elapsed.TotalSeconds:F1} s");
            var facts = printed.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries)
                .Select(l => l.Split('=', 2)).Where(p => p.Length == 2).ToDictionary(p => p[0], p => p[1]);
            string Fact(string key) => facts.TryGetValue(key, out string? value) ? value : throw new Xunit.Sdk.XunitException($"The client printed no '{key}'. Its output:\n{printed}");
            Assert.Equal(KestrelServer.Model, Fact("defaultModel"));
            Assert.Equal("64", Fact("dimension"));
            Assert.Equal("64", Fact("length"));
            Assert.Equal("1.0000", Fact("norm"));
            Assert.Equal("3", Fact("clips"));
            Assert.Equal("red", Fact("red.top"));
            Assert.Equal("blue", Fact("blue.top"));
            Assert.Equal("2", Fact("red.classes"));
            Assert.Equal("404 urn:cvrlserve:problem:not-found", Fact("missing"));
        }
        finally
        {
            folder.Delete(recursive: true);
        }
    }

    private static string RepositoryRoot()
    {
        for (var folder = new DirectoryInfo(AppContext.BaseDirectory); folder is not null; folder = folder.Parent)
        {
            if (File.Exists(Path.Combine(folder.FullName, ".config", "dotnet-tools.json")))
            {
                return folder.FullName;
            }
        }

        throw new InvalidOperationException($"No .config/dotnet-tools.json above {AppContext.BaseDirectory}.");
    }

    /// <summary>Runs a command in <paramref name="folder"/> (through <c>env -C</c>); asserts exit code 0 and returns its stdout.</summary>
    private static async Task<string> RunAsync(string folder, params string[] command)
    {
        byte[] stdout = [];
        var result = await ToolProcess.RunAsync("env", ["-C", folder, "DOTNET_NOLOGO=1", "DOTNET_CLI_TELEMETRY_OPTOUT=1", .. command],
            async (stream, ct) => stdout = await ToolProcess.ReadCappedAsync(stream, 16 << 20, () => new InvalidOperationException("stdout over 16 MB"), ct),
            StepTimeout, command[0]);
        string text = Encoding.UTF8.GetString(stdout);
        Assert.True(result.ExitCode == 0, $"'{string.Join(' ', command)}' exited with {result.ExitCode}:\n{text}\n{string.Join('\n', result.StderrTail)}");
        return text;
    }
}
