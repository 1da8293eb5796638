using System.Diagnostics;

namespace CvrlServe.Training.Tests;

/// <summary>
/// Small real videos made with the ffmpeg CLI once per test run: eight visually distinct unlabeled
/// clips for pretraining, and a labelled folder-per-class set whose classes differ in colour and motion.
/// </summary>
public sealed class TrainingVideos : IDisposable
{
    private static readonly string[] Sources =
    [
        "testsrc2=s=64x48:r=15",
        "mandelbrot=s=64x48:r=15",
        "life=s=64x48:r=15:mold=10:ratio=0.3:life_color=#00ff00:death_color=#c83232",
        "cellauto=s=64x48:r=15:rule=110",
        "gradients=s=64x48:r=15:speed=0.05",
        "color=c=navy:s=64x48:r=15,drawbox=x='mod(t*40,64)':y=10:w=14:h=14:color=yellow:t=fill",
        "rgbtestsrc=s=64x48:r=15,hue=h='t*90'",
        "smptebars=s=64x48:r=15,vflip,hue=s='1+sin(t*3)'",
    ];

    public TrainingVideos()
    {
        Root = Directory.CreateTempSubdirectory("cvrl-train-").FullName;
        Unlabeled = Path.Combine(Root, "unlabeled");
        Labelled = Path.Combine(Root, "labelled");
        for (int i = 0; i < Sources.Length; i++)
        {
            Make(Path.Combine(Unlabeled, i % 2 == 0 ? "a" : "b", $"video{i}.mp4"), Sources[i], seconds: 3);
        }

        // Three classes: a box moving right, a box moving down, a pulsing colour field; 4 videos each.
        for (int v = 0; v < 4; v++)
        {
            int speed = 20 + 8 * v;
            Make(Path.Combine(Labelled, "right", $"r{v}.mp4"), $"color=c=0x{20 + 40 * v:X2}2040:s=64x48:r=15,drawbox=x='mod(t*{speed},64)':y={6 + 6 * v}:w=12:h=12:color=white:t=fill", 2);
            Make(Path.Combine(Labelled, "down", $"d{v}.mp4"), $"color=c=0x2040{20 + 40 * v:X2}:s=64x48:r=15,drawbox=x={8 + 10 * v}:y='mod(t*{speed},48)':w=12:h=12:color=orange:t=fill", 2);
            Make(Path.Combine(Labelled, "pulse", $"p{v}.mp4"), $"color=c=0x40{20 + 40 * v:X2}20:s=64x48:r=15,hue=b='2*sin(t*{3 + v})'", 2);
        }
    }

    public string Root { get; }

    public string Unlabeled { get; }

    public string Labelled { get; }

    public void Dispose() => Directory.Delete(Root, recursive: true);

    private static void Make(string path, string source, int seconds)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        var start = new ProcessStartInfo("ffmpeg",
            $"-nostdin -hide_banner -loglevel error -y -f lavfi -i \"{source}\" -t {seconds} -c:v libx264 -preset ultrafast -pix_fmt yuv420p \"{path}\"")
        {
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        using var process = Process.Start(start)!;
        string stderr = process.StandardError.ReadToEnd();
        process.WaitForExit();
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"ffmpeg could not make {path}: {stderr}");
        }
    }
}

[CollectionDefinition(Name)]
public sealed class SharedTrainingVideos : ICollectionFixture<TrainingVideos>
{
    public const string Name = "training videos";
}
