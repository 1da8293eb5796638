using CvrlServe.Core.Video;
using SynthMotion;

namespace CvrlServe.Training.Tests.Benchmark;

/// <summary>
/// The benchmark generator: deterministic for a seed, and each class shows the motion it names, measured
/// from the rendered pixels (actor mask = pixels that differ from the backdrop), not from the script.
/// </summary>
public sealed class SynthMotionTests
{
    /// <summary>No noise, jitter, clutter or distractor: the only thing that differs from the backdrop is the actor.</summary>
    private static readonly RenderSettings Clean = new() { MaxNoise = 0, MaxJitter = 0, DistractorProbability = 0, MaxClutter = 0 };

    [Fact]
    public void Tracks_HaveTheDesignedClasses()
    {
        Assert.Equal(10, Track.MotionOnly.Classes.Count);
        Assert.All(Track.MotionOnly.Classes, c => Assert.Equal(ActorKind.Random, c.Kind));
        Assert.Equal(Enum.GetValues<Motion>().Length, Track.MotionOnly.Classes.Select(c => c.Motion).Distinct().Count());
        Assert.Equal(16, Track.SceneAndMotion.Classes.Count);
        Assert.Equal(16, Track.SceneAndMotion.Classes.Select(c => (c.Kind, c.Motion)).Distinct().Count());
        Assert.All(Track.All.SelectMany(t => t.Classes), c => Assert.Matches("^[a-z-]+$", c.Name));
    }

    [Fact]
    public void Frames_SameSeed_AreIdentical_OtherSeed_Differs()
    {
        var job = Generator.Plan(Track.MotionOnly, new RenderSettings(), seed: 7, trainPerClass: 1, testPerClass: 0)[0];
        var first = Generator.Frames(job, new RenderSettings()).ToArray();
        var again = Generator.Frames(job, new RenderSettings()).ToArray();
        var other = Generator.Frames(job with { Seed = job.Seed + 1 }, new RenderSettings()).ToArray();
        Assert.Equal(first.Length, again.Length);
        Assert.All(first.Zip(again), p => Assert.Equal(p.First, p.Second));
        Assert.NotEqual(first[0], other[0]);
        Assert.NotEqual(Generator.Plan(Track.MotionOnly, new RenderSettings(), 7, 1, 0).Select(j => j.Seed), Generator.Plan(Track.MotionOnly, new RenderSettings(), 8, 1, 0).Select(j => j.Seed));
    }

    [Fact]
    public async Task Files_SameSeed_AreByteIdentical_AndDecodeToTheRenderedFrameCount()
    {
        string folder = Directory.CreateTempSubdirectory("synthmotion-").FullName;
        try
        {
            var settings = new RenderSettings { WebmShare = 0.5 };
            var jobs = Generator.Plan(Track.SceneAndMotion, settings, seed: 3, trainPerClass: 1, testPerClass: 0).Take(4).ToArray();
            Assert.Contains(jobs, j => j.RelativePath.EndsWith(".webm", StringComparison.Ordinal));
            Assert.Contains(jobs, j => j.RelativePath.EndsWith(".mp4", StringComparison.Ordinal));
            using var reader = new VideoReader();
            foreach (var job in jobs)
            {
                string a = Path.Combine(folder, "a" + Path.GetExtension(job.RelativePath)), b = Path.Combine(folder, "b" + Path.GetExtension(job.RelativePath));
                await Generator.WriteAsync(job, settings, a);
                await Generator.WriteAsync(job, settings, b);
                Assert.Equal(await File.ReadAllBytesAsync(a), await File.ReadAllBytesAsync(b));
                var media = await reader.GetMediaInfoAsync(a);
                Assert.Equal((settings.Width, settings.Height), (media.Width, media.Height));
                Assert.Equal(Renderer.Draw(job.Class, settings, job.Seed).Frames, media.Grid(null).Count);
                Assert.Equal(a.EndsWith(".webm", StringComparison.Ordinal) ? "vp9" : "h264", media.Codec);
            }
        }
        finally
        {
            Directory.Delete(folder, recursive: true);
        }
    }

    [Theory]
    [InlineData(Motion.Right, 1, 0)]
    [InlineData(Motion.Left, -1, 0)]
    [InlineData(Motion.Up, 0, -1)]
    [InlineData(Motion.Down, 0, 1)]
    public void Translation_MovesTheActorThatWay(Motion motion, int dx, int dy)
    {
        foreach (int seed in new[] { 1, 2, 3 })
        {
            var (script, frames, backdrop) = Render(motion, seed);
            var steps = new List<(double X, double Y)>();
            for (int f = 0; f + 4 < frames.Length; f += 4)
            {
                var (x0, y0, n0) = Centroid(frames[f], backdrop);
                var (x1, y1, n1) = Centroid(frames[f + 4], backdrop);
                // Skip steps where the actor wraps around or is cut by an edge (its area changes).
                if (n0 > 0 && Math.Abs(n1 - n0) < 0.05 * n0)
                {
                    steps.Add((x1 - x0, y1 - y0));
                }
            }

            Assert.True(steps.Count > 5, $"seed {seed}: only {steps.Count} measurable steps");
            double along = steps.Select(s => s.X * dx + s.Y * dy).Order().ElementAt(steps.Count / 2);
            double across = steps.Select(s => Math.Abs(s.X * dy + s.Y * dx)).Order().ElementAt(steps.Count / 2);
            // Median speed over 4 frames is within the designed range, and the motion is along one axis.
            Assert.InRange(along, 4 * new RenderSettings().MinSpeed * 0.8, 4 * new RenderSettings().MaxSpeed * 1.2);
            Assert.True(across < 0.3, $"seed {seed}: moves {across:F2} px across the {motion} axis");
        }
    }

    [Theory]
    [InlineData(Motion.ZoomIn, true)]
    [InlineData(Motion.ZoomOut, false)]
    public void Zoom_ChangesTheActorsAreaMonotonically(Motion motion, bool grows)
    {
        var (script, frames, backdrop) = Render(motion, seed: 5, centred: true);
        var areas = frames.Select(f => Centroid(f, backdrop).Pixels).ToArray();
        double ratio = (double)areas[^1] / areas[0];
        double expected = grows ? script.Zoom * script.Zoom : 1 / (script.Zoom * script.Zoom);
        Assert.InRange(ratio, expected * 0.7, expected * 1.3);
        int rising = areas.Zip(areas.Skip(8)).Count(p => p.Second > p.First);
        Assert.Equal(grows ? areas.Length - 8 : 0, rising);
    }

    [Theory]
    [InlineData(Motion.RotateClockwise, 1)]
    [InlineData(Motion.RotateCounterClockwise, -1)]
    public void Rotation_TurnsTheActorsAxisThatWay(Motion motion, int sense)
    {
        var (script, frames, backdrop) = Render(motion, seed: 9, centred: true, shape: Shape.Ellipse);
        double degreesPerFrame = script.Spin * 180 / Math.PI;
        for (int f = 0; f + 4 < frames.Length; f += 4)
        {
            // Principal-axis angle in image coordinates (y down): increasing means clockwise on screen.
            double turn = AxisAngle(frames[f + 4], backdrop) - AxisAngle(frames[f], backdrop);
            turn = (turn + 270) % 180 - 90;
            Assert.InRange(turn * sense, 4 * degreesPerFrame * 0.6, 4 * degreesPerFrame * 1.4);
        }
    }

    [Theory]
    [InlineData(Motion.FadeIn, 1)]
    [InlineData(Motion.FadeOut, -1)]
    public void Fade_RampsTheActorsContrastThatWay_WithOneSnapPerPeriod(Motion motion, int sense)
    {
        var (script, frames, backdrop) = Render(motion, seed: 11, centred: true);
        var contrast = frames.Select(f => f.Select((v, i) => Math.Abs(v - backdrop[i])).Sum()).ToArray();
        int withSense = contrast.Zip(contrast.Skip(1)).Count(p => Math.Sign(p.Second - p.First) == sense);
        int snaps = contrast.Zip(contrast.Skip(1)).Count(p => Math.Sign(p.Second - p.First) == -sense);
        double periods = (double)script.Frames / script.FadePeriod;
        Assert.InRange(snaps, 1, (int)Math.Ceiling(periods) + 1);
        Assert.True(withSense >= frames.Length - 1 - snaps - 2, $"{withSense} of {frames.Length - 1} steps ramp {(sense > 0 ? "up" : "down")}");
    }

    private static (VideoScript Script, byte[][] Frames, byte[] Backdrop) Render(Motion motion, int seed, bool centred = false, Shape? shape = null)
    {
        var motionClass = Track.MotionOnly.Classes.Single(c => c.Motion == motion);
        var script = Renderer.Draw(motionClass, Clean, seed);
        if (centred)
        {
            script = script with { StartX = Clean.Width / 2.0, StartY = Clean.Height / 2.0 };
        }

        // One solid colour that stands out from the backdrop, so the mask is exactly the actor.
        script = script with { Actor = script.Actor with { Shape = shape ?? script.Actor.Shape, Fill = Fill.Solid } };

        var backdrop = Renderer.RenderBackdrop(script, Clean).Select(v => (byte)Math.Clamp(Math.Round(v), 0, 255)).ToArray();
        var frames = Enumerable.Range(0, script.Frames).Select(f => Renderer.RenderFrame(script, Clean, Renderer.RenderBackdrop(script, Clean), f)).ToArray();
        return (script, frames, backdrop);
    }

    /// <summary>Centroid and pixel count of the pixels that differ from the backdrop.</summary>
    private static (double X, double Y, int Pixels) Centroid(byte[] frame, byte[] backdrop)
    {
        double sx = 0, sy = 0;
        int n = 0;
        foreach (var (x, y) in Mask(frame, backdrop))
        {
            sx += x;
            sy += y;
            n++;
        }

        return n == 0 ? (0, 0, 0) : (sx / n, sy / n, n);
    }

    private static double AxisAngle(byte[] frame, byte[] backdrop)
    {
        var (cx, cy, _) = Centroid(frame, backdrop);
        double xx = 0, yy = 0, xy = 0;
        foreach (var (x, y) in Mask(frame, backdrop))
        {
            xx += (x - cx) * (x - cx);
            yy += (y - cy) * (y - cy);
            xy += (x - cx) * (y - cy);
        }

        return 0.5 * Math.Atan2(2 * xy, xx - yy) * 180 / Math.PI;
    }

    private static IEnumerable<(int X, int Y)> Mask(byte[] frame, byte[] backdrop)
    {
        int width = Clean.Width;
        for (int p = 0; p < frame.Length / 3; p++)
        {
            int difference = Math.Abs(frame[3 * p] - backdrop[3 * p]) + Math.Abs(frame[3 * p + 1] - backdrop[3 * p + 1]) + Math.Abs(frame[3 * p + 2] - backdrop[3 * p + 2]);
            if (difference > 30)
            {
                yield return (p % width, p / width);
            }
        }
    }
}
