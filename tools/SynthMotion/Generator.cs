using System.Globalization;
using System.Security.Cryptography;
using System.Text;

namespace SynthMotion;

/// <summary>One video to make: its class, split, seed and path inside the track folder.</summary>
public sealed record VideoJob(MotionClass Class, string Split, int Index, int Seed, string RelativePath);

/// <summary>Plans a track's videos (seeds and names from the run seed) and renders + encodes one.</summary>
public static class Generator
{
    public static IReadOnlyList<VideoJob> Plan(Track track, RenderSettings settings, int seed, int trainPerClass, int testPerClass)
    {
        ArgumentNullException.ThrowIfNull(track);
        ArgumentNullException.ThrowIfNull(settings);
        var jobs = new List<VideoJob>();
        foreach (var (split, count) in new[] { ("train", trainPerClass), ("test", testPerClass) })
        {
            foreach (var motionClass in track.Classes)
            {
                for (int i = 0; i < count; i++)
                {
                    int videoSeed = VideoSeed(seed, track.Name, split, motionClass.Name, i);
                    // The container is drawn from the video's seed too: about one in ten is VP9/WebM.
                    bool webm = new Random(videoSeed ^ 0x5EED).NextDouble() < settings.WebmShare;
                    string name = string.Create(CultureInfo.InvariantCulture, $"{motionClass.Name}-{split}-{i:D5}.{(webm ? "webm" : "mp4")}");
                    jobs.Add(new VideoJob(motionClass, split, i, videoSeed, Path.Combine(split, motionClass.Name, name)));
                }
            }
        }

        return jobs;
    }

    /// <summary>Every frame of a job's video, rgb24.</summary>
    public static IEnumerable<byte[]> Frames(VideoJob job, RenderSettings settings)
    {
        ArgumentNullException.ThrowIfNull(job);
        var script = Renderer.Draw(job.Class, settings, job.Seed);
        var backdrop = Renderer.RenderBackdrop(script, settings);
        for (int f = 0; f < script.Frames; f++)
        {
            yield return Renderer.RenderFrame(script, settings, backdrop, f);
        }
    }

    public static Task WriteAsync(VideoJob job, RenderSettings settings, string path, CancellationToken cancellationToken = default) =>
        VideoWriter.WriteAsync(path, settings, Frames(job, settings), cancellationToken);

    /// <summary>A 31-bit seed from the run seed and the video's identity (stable across runs and platforms).</summary>
    public static int VideoSeed(int seed, string track, string split, string className, int index)
    {
        var hash = SHA256.HashData(Encoding.UTF8.GetBytes(string.Create(CultureInfo.InvariantCulture, $"{seed}|{track}|{split}|{className}|{index}")));
        return BitConverter.ToInt32(hash, 0) & 0x7FFFFFFF;
    }
}
