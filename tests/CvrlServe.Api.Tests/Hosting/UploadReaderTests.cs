using CvrlServe.Api.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace CvrlServe.Api.Tests.Hosting;

public sealed class UploadReaderTests : IDisposable
{
    private readonly string _root = Directory.CreateTempSubdirectory("cvrl-uploads-").FullName;

    public void Dispose() => Directory.Delete(_root, recursive: true);

    [Fact]
    public void DeleteLeftovers_SharedFolder_OnlyUploadsNobodyCanStillOwn()
    {
        string folder = Path.Combine(_root, "uploads");
        Directory.CreateDirectory(folder);
        var reader = new UploadReader(Options.Create(new CvrlServeOptions { DataFolder = _root, RequestTimeoutSeconds = 60 }));
        var ownerless = TimeSpan.FromSeconds(60) + UploadReader.LeftoverMargin;
        string Upload(string name, TimeSpan age)
        {
            string path = Path.Combine(folder, name);
            File.WriteAllText(path, "x");
            File.SetLastWriteTimeUtc(path, DateTime.UtcNow - age);
            return path;
        }

        string dead = Upload("dead.upload", ownerless + TimeSpan.FromMinutes(1));
        // Another replica's: still arriving, or being read within its request's timeout.
        string arriving = Upload("arriving.upload", TimeSpan.Zero);
        string reading = Upload("reading.upload", ownerless - TimeSpan.FromMinutes(1));
        string other = Upload("notes.txt", TimeSpan.FromDays(1));

        Assert.Equal(1, reader.DeleteLeftovers());

        Assert.False(File.Exists(dead));
        Assert.All(new[] { arriving, reading, other }, path => Assert.True(File.Exists(path), path));
    }

    [Fact]
    public async Task UploadsFolder_Set_UploadsGoThere_DataFolderUntouched()
    {
        string scratch = Path.Combine(_root, "scratch");
        await using var app = new CvrlApiFactory(new Dictionary<string, string?> { ["Cvrl:UploadsFolder"] = scratch });
        await app.StartedAsync();

        Assert.Equal(scratch, app.Services.GetRequiredService<UploadReader>().Folder);
        Assert.Equal(Path.Combine(app.DataFolder, "uploads"), new UploadReader(Options.Create(new CvrlServeOptions { DataFolder = app.DataFolder })).Folder);
    }
}
