namespace SynthMotion;

/// <summary>Draws a <see cref="VideoScript"/> from a seed and renders it to rgb24 frames. Pure and deterministic.</summary>
public static class Renderer
{
    private static readonly Shape[] RandomShapes = [Shape.Square, Shape.Triangle, Shape.Cross, Shape.Ellipse, Shape.Diamond, Shape.LShape, Shape.HalfDisk];
    private static readonly Fill[] RandomFills = [Fill.Solid, Fill.Split, Fill.Stripes, Fill.Checker];
    private static readonly Backdrop[] RandomBackdrops = [Backdrop.Solid, Backdrop.Gradient, Backdrop.Stripes, Backdrop.Blotches];

    /// <summary>Every random choice of one video, from <paramref name="seed"/> alone.</summary>
    public static VideoScript Draw(MotionClass motionClass, RenderSettings settings, int seed)
    {
        ArgumentNullException.ThrowIfNull(motionClass);
        ArgumentNullException.ThrowIfNull(settings);
        var random = new Random(seed);
        int frames = (int)Math.Round(settings.Fps * Uniform(random, settings.MinSeconds, settings.MaxSeconds));
        var (actor, backdrop, a, b) = Look(motionClass.Kind, random);
        double size = Uniform(random, settings.MinSize, settings.MaxSize);
        double startX = Uniform(random, size, settings.Width - size);
        double startY = Uniform(random, size, settings.Height - size);
        var clutter = Enumerable.Range(0, random.Next(settings.MaxClutter + 1))
            .Select(_ => (Sprite: new Sprite(RandomShapes[random.Next(RandomShapes.Length)], Fill.Solid, RandomColour(random), RandomColour(random)),
                X: Uniform(random, 0, settings.Width), Y: Uniform(random, 0, settings.Height), Size: Uniform(random, 2, 4), Angle: Uniform(random, 0, 2 * Math.PI)))
            .ToArray();
        (Sprite, double, double, double, double, double)? distractor = null;
        if (random.NextDouble() < settings.DistractorProbability)
        {
            double heading = Uniform(random, 0, 2 * Math.PI);
            double speed = Uniform(random, 0, settings.MaxDistractorSpeed);
            distractor = (new Sprite(RandomShapes[random.Next(RandomShapes.Length)], RandomFills[random.Next(RandomFills.Length)], RandomColour(random), RandomColour(random)),
                Uniform(random, 0, settings.Width), Uniform(random, 0, settings.Height), Uniform(random, 3, 5), speed * Math.Cos(heading), speed * Math.Sin(heading));
        }

        return new VideoScript(
            motionClass, frames, actor, size, startX, startY,
            Angle: Uniform(random, 0, 2 * Math.PI),
            Speed: Uniform(random, settings.MinSpeed, settings.MaxSpeed),
            Spin: Uniform(random, settings.MinSpin, settings.MaxSpin) * Math.PI / 180,
            Zoom: Uniform(random, settings.MinZoom, settings.MaxZoom),
            FadePeriod: random.Next(settings.MinFadePeriod, settings.MaxFadePeriod + 1),
            FadePhase: random.NextDouble(),
            backdrop, a, b,
            BackdropScale: Uniform(random, 8, 20),
            clutter, distractor,
            Noise: Uniform(random, 0, settings.MaxNoise),
            Jitter: settings.MaxJitter,
            BackdropSeed: random.Next(),
            NoiseSeed: random.Next());
    }

    /// <summary>The actor's centre, half-extent, angle (radians, clockwise on screen) and opacity at frame <paramref name="f"/>.</summary>
    public static (double X, double Y, double Size, double Angle, double Alpha) ActorAt(VideoScript script, RenderSettings settings, int f)
    {
        ArgumentNullException.ThrowIfNull(script);
        ArgumentNullException.ThrowIfNull(settings);
        double x = script.StartX, y = script.StartY, size = script.Size, angle = script.Angle, alpha = 1;
        double progress = script.Frames > 1 ? (double)f / (script.Frames - 1) : 0;
        double ramp = ((f + script.FadePhase * script.FadePeriod) % script.FadePeriod) / script.FadePeriod;
        switch (script.Class.Motion)
        {
            case Motion.Right: x += script.Speed * f; break;
            case Motion.Left: x -= script.Speed * f; break;
            case Motion.Up: y -= script.Speed * f; break;
            case Motion.Down: y += script.Speed * f; break;
            case Motion.ZoomIn: size = script.Size / Math.Sqrt(script.Zoom) * Math.Pow(script.Zoom, progress); break;
            case Motion.ZoomOut: size = script.Size * Math.Sqrt(script.Zoom) * Math.Pow(script.Zoom, -progress); break;
            case Motion.RotateClockwise: angle += script.Spin * f; break;
            case Motion.RotateCounterClockwise: angle -= script.Spin * f; break;
            case Motion.FadeIn: alpha = 0.1 + 0.9 * ramp; break;
            case Motion.FadeOut: alpha = 1 - 0.9 * ramp; break;
        }

        // Translating actors leave one side and come back on the other, so position says nothing of direction.
        return (Wrap(x, size, settings.Width), Wrap(y, size, settings.Height), size, angle, alpha);
    }

    /// <summary>Frame <paramref name="f"/> as rgb24, row-major, Width × Height × 3.</summary>
    public static byte[] RenderFrame(VideoScript script, RenderSettings settings, float[] backdrop, int f)
    {
        ArgumentNullException.ThrowIfNull(script);
        ArgumentNullException.ThrowIfNull(settings);
        ArgumentNullException.ThrowIfNull(backdrop);
        int w = settings.Width, h = settings.Height, j = script.Jitter;
        var random = new Random(HashCode.Combine(script.NoiseSeed, f));
        int jx = j == 0 ? 0 : random.Next(-j, j + 1);
        int jy = j == 0 ? 0 : random.Next(-j, j + 1);
        int canvasWidth = w + 2 * j;
        var canvas = (float[])backdrop.Clone();
        if (script.Distractor is { } d)
        {
            Draw(canvas, canvasWidth, h + 2 * j, d.Sprite, Wrap(d.X + d.Vx * f, d.Size, w) + j, Wrap(d.Y + d.Vy * f, d.Size, h) + j, d.Size, 0, 1);
        }

        var (x, y, size, angle, alpha) = ActorAt(script, settings, f);
        Draw(canvas, canvasWidth, h + 2 * j, script.Actor, x + j, y + j, size, angle, alpha);

        var frame = new byte[w * h * 3];
        for (int row = 0; row < h; row++)
        {
            for (int col = 0; col < w; col++)
            {
                int source = ((row + j + jy) * canvasWidth + col + j + jx) * 3;
                for (int c = 0; c < 3; c++)
                {
                    double value = canvas[source + c] + (script.Noise > 0 ? script.Noise * Gaussian(random) : 0);
                    frame[(row * w + col) * 3 + c] = (byte)Math.Clamp(Math.Round(value), 0, 255);
                }
            }
        }

        return frame;
    }

    /// <summary>The static backdrop with its clutter, with a margin of the jitter on every side (rgb floats).</summary>
    public static float[] RenderBackdrop(VideoScript script, RenderSettings settings)
    {
        ArgumentNullException.ThrowIfNull(script);
        ArgumentNullException.ThrowIfNull(settings);
        int j = script.Jitter, w = settings.Width + 2 * j, h = settings.Height + 2 * j;
        var random = new Random(script.BackdropSeed);
        var blobs = Enumerable.Range(0, 6).Select(_ => (X: random.NextDouble() * w, Y: random.NextDouble() * h, R: 4 + random.NextDouble() * 10)).ToArray();
        double stripeAngle = random.NextDouble() * Math.PI;
        var canvas = new float[w * h * 3];
        for (int y = 0; y < h; y++)
        {
            for (int x = 0; x < w; x++)
            {
                double t = script.Backdrop switch
                {
                    Backdrop.Gradient or Backdrop.Sky => (double)y / (h - 1),
                    Backdrop.Stripes => Math.Sin((x * Math.Cos(stripeAngle) + y * Math.Sin(stripeAngle)) * 2 * Math.PI / script.BackdropScale) > 0 ? 0.6 : 0,
                    Backdrop.Blotches => Math.Min(1, blobs.Sum(b => Math.Exp(-((x - b.X) * (x - b.X) + (y - b.Y) * (y - b.Y)) / (b.R * b.R)))),
                    Backdrop.Grass => 0.5 + 0.35 * Math.Sin(y * 2 * Math.PI / (script.BackdropScale / 2)) + 0.15 * Math.Sin(x * 1.7 + y * 0.3),
                    Backdrop.Tiles => ((int)(x / script.BackdropScale) + (int)(y / script.BackdropScale)) % 2,
                    Backdrop.Water => 0.7 * y / (h - 1) + 0.3 * Math.Min(1, blobs.Sum(b => Math.Exp(-((x - b.X) * (x - b.X) + (y - b.Y) * (y - b.Y)) / (b.R * b.R)))),
                    _ => 0,
                };
                var colour = script.BackdropA.Mix(script.BackdropB, t);
                canvas[(y * w + x) * 3] = (float)colour.R;
                canvas[(y * w + x) * 3 + 1] = (float)colour.G;
                canvas[(y * w + x) * 3 + 2] = (float)colour.B;
            }
        }

        foreach (var c in script.Clutter)
        {
            Draw(canvas, w, h, c.Sprite, c.X + j, c.Y + j, c.Size, c.Angle, 1);
        }

        return canvas;
    }

    /// <summary>Blends a sprite onto the canvas with 3×3 supersampled coverage (smooth edges, sub-pixel motion).</summary>
    private static void Draw(float[] canvas, int width, int height, Sprite sprite, double cx, double cy, double size, double angle, double alpha)
    {
        double reach = size * 1.42 + 1;
        int x0 = Math.Max(0, (int)Math.Floor(cx - reach)), x1 = Math.Min(width - 1, (int)Math.Ceiling(cx + reach));
        int y0 = Math.Max(0, (int)Math.Floor(cy - reach)), y1 = Math.Min(height - 1, (int)Math.Ceiling(cy + reach));
        double cos = Math.Cos(angle), sin = Math.Sin(angle);
        for (int y = y0; y <= y1; y++)
        {
            for (int x = x0; x <= x1; x++)
            {
                double r = 0, g = 0, b = 0;
                int hits = 0;
                for (int sy = 0; sy < 3; sy++)
                {
                    for (int sx = 0; sx < 3; sx++)
                    {
                        double dx = x + (sx + 0.5) / 3 - 0.5 - cx, dy = y + (sy + 0.5) / 3 - 0.5 - cy;
                        // Screen → local: the inverse of a clockwise (y-down) rotation by angle, then scale.
                        double u = (cos * dx + sin * dy) / size, v = (-sin * dx + cos * dy) / size;
                        if (sprite.At(u, v) is { } colour)
                        {
                            r += colour.R;
                            g += colour.G;
                            b += colour.B;
                            hits++;
                        }
                    }
                }

                if (hits == 0)
                {
                    continue;
                }

                double cover = alpha * hits / 9;
                int i = (y * width + x) * 3;
                canvas[i] = (float)(canvas[i] * (1 - cover) + r / hits * cover);
                canvas[i + 1] = (float)(canvas[i + 1] * (1 - cover) + g / hits * cover);
                canvas[i + 2] = (float)(canvas[i + 2] * (1 - cover) + b / hits * cover);
            }
        }
    }

    /// <summary>The actor's look and setting: random for the motion-only track, the kind's own for the scene track.</summary>
    private static (Sprite Actor, Backdrop Backdrop, Rgb A, Rgb B) Look(ActorKind kind, Random random)
    {
        switch (kind)
        {
            case ActorKind.Ball:
                return (new Sprite(Shape.SegmentedDisk, Fill.Segments, Rgb.FromHsv(Uniform(random, 0, 50), Uniform(random, 0.7, 1), Uniform(random, 0.85, 1)), Rgb.FromHsv(Uniform(random, 40, 60), 0.1, 1)),
                    Backdrop.Grass, Rgb.FromHsv(Uniform(random, 90, 140), Uniform(random, 0.5, 0.8), Uniform(random, 0.3, 0.45)), Rgb.FromHsv(Uniform(random, 90, 140), Uniform(random, 0.5, 0.8), Uniform(random, 0.5, 0.65)));
            case ActorKind.Crate:
                return (new Sprite(Shape.Square, Fill.Planks, Rgb.FromHsv(Uniform(random, 25, 40), Uniform(random, 0.45, 0.65), Uniform(random, 0.65, 0.85)), Rgb.FromHsv(Uniform(random, 20, 35), Uniform(random, 0.5, 0.7), Uniform(random, 0.3, 0.45))),
                    Backdrop.Tiles, Rgb.FromHsv(0, 0, Uniform(random, 0.15, 0.3)), Rgb.FromHsv(0, 0, Uniform(random, 0.35, 0.5)));
            case ActorKind.Fish:
                return (new Sprite(Shape.Fish, Fill.Stripes, Rgb.FromHsv(Uniform(random, 170, 200), Uniform(random, 0.5, 0.9), Uniform(random, 0.85, 1)), Rgb.FromHsv(Uniform(random, 40, 60), Uniform(random, 0.6, 1), 1)),
                    Backdrop.Water, Rgb.FromHsv(Uniform(random, 205, 230), Uniform(random, 0.6, 0.9), Uniform(random, 0.35, 0.5)), Rgb.FromHsv(Uniform(random, 205, 230), Uniform(random, 0.7, 1), Uniform(random, 0.1, 0.2)));
            case ActorKind.Kite:
                return (new Sprite(Shape.Diamond, Fill.Braced, Rgb.FromHsv(Uniform(random, 280, 330), Uniform(random, 0.6, 1), Uniform(random, 0.55, 0.8)), Rgb.FromHsv(0, 0, Uniform(random, 0.05, 0.15))),
                    Backdrop.Sky, Rgb.FromHsv(Uniform(random, 195, 215), Uniform(random, 0.4, 0.7), Uniform(random, 0.85, 1)), Rgb.FromHsv(Uniform(random, 195, 215), Uniform(random, 0, 0.15), 1));
        }

        var backdrop = RandomBackdrops[random.Next(RandomBackdrops.Length)];
        var a = Rgb.FromHsv(Uniform(random, 0, 360), Uniform(random, 0, 0.6), Uniform(random, 0.15, 0.9));
        var b = Rgb.FromHsv(Uniform(random, 0, 360), Uniform(random, 0, 0.6), Uniform(random, 0.15, 0.9));
        double backdropLuma = (a.Luma + b.Luma) / 2;
        // The actor must stand out from its backdrop (luma 50 apart): redraw until it does.
        Rgb primary;
        do
        {
            primary = RandomColour(random);
        }
        while (Math.Abs(primary.Luma - backdropLuma) < 50);

        var secondary = primary.Mix(RandomColour(random), 0.6);
        return (new Sprite(RandomShapes[random.Next(RandomShapes.Length)], RandomFills[random.Next(RandomFills.Length)], primary, secondary), backdrop, a, b);
    }

    private static Rgb RandomColour(Random random) => Rgb.FromHsv(Uniform(random, 0, 360), Uniform(random, 0.3, 1), Uniform(random, 0.1, 1));

    private static double Uniform(Random random, double low, double high) => low + random.NextDouble() * (high - low);

    /// <summary>A standard normal draw from a fixed table (per-pixel noise is the renderer's hot loop).</summary>
    private static double Gaussian(Random random) => GaussianTable[random.Next(GaussianTable.Length)];

    private static readonly double[] GaussianTable = MakeGaussianTable();

    private static double[] MakeGaussianTable()
    {
        var random = new Random(12345);
        return Enumerable.Range(0, 1 << 14).Select(_ => Math.Sqrt(-2 * Math.Log(1 - random.NextDouble())) * Math.Cos(2 * Math.PI * random.NextDouble())).ToArray();
    }

    /// <summary>Wraps a coordinate so an actor leaving one edge re-enters at the other (period extent + 2·size + 2).</summary>
    private static double Wrap(double value, double size, int extent)
    {
        double low = -size - 1, period = extent + 2 * size + 2;
        return low + (((value - low) % period) + period) % period;
    }
}
