using System.Diagnostics;

namespace CvrlServe.Api.Tests;

/// <summary>
/// Real video files made with the ffmpeg CLI once per test run (deleted at the end): two colour classes
/// for probe training (red and blue scenes with moving noise, three videos each, every one different),
/// a longer video, a truncated one, and a text file with a video's name.
/// </summary>
public sealed class ApiVideos : IDisposable
{
    public ApiVideos()
    {
        Folder = Directory.CreateTempSubdirectory("cvrl-api-videos-").FullName;
        for (int i = 0; i < 3; i++)
        {
            Make($"red-{i}.mp4", $"color=c=0xD02020:s=64x48:r=25,noise=alls={10 + 5 * i}:allf=t+u", 2);
            Make($"blue-{i}.mp4", $"color=c=0x2030D0:s=64x48:r=25,noise=alls={10 + 5 * i}:allf=t+u", 2);
        }

        Make("moving.mp4", "testsrc2=s=96x72:r=25", 6);
        byte[] whole = File.ReadAllBytes(Path("moving.mp4"));
        File.WriteAllBytes(Path("truncated.mp4"), whole[..(whole.Length / 3)]);
        File.WriteAllText(Path("text.mp4"), "This is a text file with a video extension.\n");
    }

    public string Folder { get; }

    public string Path(string name) => System.IO.Path.Combine(Folder, name);

    public void Dispose() => Directory.Delete(Folder, recursive: true);

    private void Make(string name, string source, double seconds)
    {
        var start = new ProcessStartInfo("ffmpeg") { RedirectStandardError = true, UseShellExecute = false };
        foreach (string argument in new[]
        {
            "-nostdin", "-hide_banner", "-loglevel", "error", "-y", "-f", "lavfi", "-i", source, "-t", seconds.ToString(System.Globalization.CultureInfo.InvariantCulture),
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p", Path(name),
        })
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg failed to make {name}: {stderr}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SharedApiVideos : ICollectionFixture<ApiVideos>
{
    public const string Name = "api";
}
