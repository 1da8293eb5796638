using System.Net.Http.Headers;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Mvc.Testing;
using Microsoft.AspNetCore.TestHost;
using Microsoft.Extensions.DependencyInjection;

namespace CvrlServe.Api.Tests;

/// <summary>
/// The real service in memory: a models folder holding a copy of the committed tiny encoder (as
/// <c>tiny</c>), a fresh data folder, CPU inference, and settings a test may override. Folders are deleted
/// when the factory is disposed.
/// </summary>
public sealed class CvrlApiFactory : WebApplicationFactory<Program>
{
    public const string Model = "tiny";
    public const string AdminKey = "admin-key-0123456789abcdef";
    public const string ClientKey = "client-key-0123456789abcdef";

    private readonly Dictionary<string, string?> _settings;
    private readonly Action<IServiceCollection>? _services;

    /// <param name="services">Replaces services after the app's own registration: only for seams the real part cannot fill here (a DNS resolver).</param>
    public CvrlApiFactory(IDictionary<string, string?>? settings = null, Action<string>? prepareModels = null, Action<IServiceCollection>? services = null)
    {
        _services = services;
        Root = Directory.CreateTempSubdirectory("cvrl-api-").FullName;
        ModelsFolder = System.IO.Path.Combine(Root, "models");
        DataFolder = System.IO.Path.Combine(Root, "data");
        CopyModel(System.IO.Path.Combine(AppContext.BaseDirectory, "Models", "tiny-seed1"), System.IO.Path.Combine(ModelsFolder, Model));
        prepareModels?.Invoke(ModelsFolder);
        _settings = new Dictionary<string, string?>
        {
            ["Cvrl:ModelsFolder"] = ModelsFolder,
            ["Cvrl:DataFolder"] = DataFolder,
            ["Cvrl:Provider"] = "Cpu",
            ["Cvrl:Keys:Admin:0"] = AdminKey,
            ["Cvrl:Keys:Clients:0"] = ClientKey,
            ["Cvrl:RateLimit:PermitsPerWindow"] = "0",
            ["Cvrl:Batching:IntraOpThreads"] = "1",
        };
        foreach (var (key, value) in settings ?? new Dictionary<string, string?>())
        {
            _settings[key] = value;
        }
    }

    public string Root { get; }

    public string ModelsFolder { get; }

    public string DataFolder { get; }

    public string UploadsFolder => System.IO.Path.Combine(DataFolder, "uploads");

    public static void CopyModel(string source, string target)
    {
        Directory.CreateDirectory(target);
        foreach (string file in Directory.GetFiles(source))
        {
            File.Copy(file, System.IO.Path.Combine(target, System.IO.Path.GetFileName(file)), overwrite: true);
        }
    }

    /// <summary>A client whose requests carry <paramref name="key"/> (none when null).</summary>
    public HttpClient Client(string? key = null)
    {
        var client = CreateClient();
        if (key is not null)
        {
            client.DefaultRequestHeaders.Add("X-Api-Key", key);
        }

        return client;
    }

    /// <summary>Waits (on the registry's own start-up task) until every model's first load was tried.</summary>
    public async Task StartedAsync()
    {
        _ = Server; // builds the host
        await Services.GetRequiredService<CvrlServe.Api.Hosting.ModelRegistryService>().Started.WaitAsync(TimeSpan.FromMinutes(2));
    }

    public static MultipartFormDataContent Form(string videoPath, params (string Name, string Value)[] fields)
    {
        var form = new MultipartFormDataContent();
        var file = new ByteArrayContent(File.ReadAllBytes(videoPath));
        file.Headers.ContentType = new MediaTypeHeaderValue("video/mp4");
        form.Add(file, "file", System.IO.Path.GetFileName(videoPath));
        foreach (var (name, value) in fields)
        {
            form.Add(new StringContent(value), name);
        }

        return form;
    }

    protected override void ConfigureWebHost(IWebHostBuilder builder)
    {
        foreach (var (key, value) in _settings)
        {
            builder.UseSetting(key, value);
        }

        if (_services is not null)
        {
            builder.ConfigureTestServices(_services);
        }
    }

    protected override void Dispose(bool disposing)
    {
        base.Dispose(disposing);
        if (disposing && Directory.Exists(Root))
        {
            Directory.Delete(Root, recursive: true);
        }
    }
}

internal static class ServiceProviderExtensions
{
    public static CvrlServe.Core.Video.VideoReader GetReader(this IServiceProvider services) => services.GetRequiredService<CvrlServe.Core.Video.VideoReader>();
}
