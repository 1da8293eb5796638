namespace SynthMotion;

/// <summary>An RGB colour with components in 0..255.</summary>
public readonly record struct Rgb(double R, double G, double B)
{
    public double Luma => 0.299 * R + 0.587 * G + 0.114 * B;

    public static Rgb FromHsv(double hueDegrees, double saturation, double value)
    {
        double h = ((hueDegrees % 360) + 360) % 360 / 60;
        double c = value * saturation;
        double x = c * (1 - Math.Abs(h % 2 - 1));
        double m = value - c;
        var (r, g, b) = (int)h switch
        {
            0 => (c, x, 0.0),
            1 => (x, c, 0.0),
            2 => (0.0, c, x),
            3 => (0.0, x, c),
            4 => (x, 0.0, c),
            _ => (c, 0.0, x),
        };
        return new Rgb((r + m) * 255, (g + m) * 255, (b + m) * 255);
    }

    public Rgb Mix(Rgb other, double t) => new(R + (other.R - R) * t, G + (other.G - G) * t, B + (other.B - B) * t);
}

public enum Shape
{
    Square,
    Triangle,
    Cross,
    Ellipse,
    Diamond,
    LShape,
    HalfDisk,
    SegmentedDisk,
    Fish,
}

public enum Fill
{
    Solid,
    Split,
    Stripes,
    Checker,
    Segments,
    Planks,
    Braced,
}

public enum Backdrop
{
    Solid,
    Gradient,
    Stripes,
    Blotches,
    Grass,
    Tiles,
    Water,
    Sky,
}

/// <summary>A shape with its fill, in local coordinates where the shape spans about [-1, 1]².</summary>
public sealed record Sprite(Shape Shape, Fill Fill, Rgb Primary, Rgb Secondary)
{
    /// <summary>The sprite's colour at local (u, v), or null outside it.</summary>
    public Rgb? At(double u, double v)
    {
        if (!Inside(u, v))
        {
            return null;
        }

        bool second = Fill switch
        {
            Fill.Split => u > 0,
            Fill.Stripes => Mod(Math.Floor((u + v) * 2.5), 2) == 1,
            Fill.Checker => Mod(Math.Floor(u * 2.5) + Math.Floor(v * 2.5), 2) == 1,
            Fill.Segments => Mod(Math.Floor((Math.Atan2(v, u) + Math.PI) / (Math.PI / 3)), 2) == 1,
            Fill.Planks => Mod(Math.Floor((v + 1) * 3), 2) == 1 || Math.Abs(u) > 0.65 || Math.Abs(v) > 0.65,
            Fill.Braced => Math.Abs(u) < 0.08 || Math.Abs(v) < 0.08,
            _ => false,
        };
        return second ? Secondary : Primary;
    }

    private bool Inside(double u, double v) => Shape switch
    {
        Shape.Square => Math.Abs(u) <= 0.8 && Math.Abs(v) <= 0.8,
        Shape.Triangle => v <= 0.8 && v >= -0.9 && Math.Abs(u) <= (v + 0.9) / 1.7 * 0.95,
        Shape.Cross => (Math.Abs(u) <= 0.3 && Math.Abs(v) <= 0.9) || (Math.Abs(v) <= 0.3 && Math.Abs(u) <= 0.9),
        Shape.Ellipse => (u / 0.95) * (u / 0.95) + (v / 0.55) * (v / 0.55) <= 1,
        Shape.Diamond => Math.Abs(u) / 0.65 + Math.Abs(v) / 0.95 <= 1,
        Shape.LShape => (u >= -0.8 && u <= -0.3 && Math.Abs(v) <= 0.9) || (v >= 0.4 && v <= 0.9 && Math.Abs(u) <= 0.8),
        Shape.HalfDisk => u * u + v * v <= 0.81 && v >= -0.15,
        Shape.SegmentedDisk => u * u + v * v <= 0.81,
        Shape.Fish => ((u - 0.2) / 0.7) * ((u - 0.2) / 0.7) + (v / 0.45) * (v / 0.45) <= 1 || (u <= -0.4 && u >= -0.95 && Math.Abs(v) <= (-0.4 - u) * 0.9),
        _ => false,
    };

    private static double Mod(double a, double n) => ((a % n) + n) % n;
}

/// <summary>
/// Everything drawn for one video, fixed before the first frame: the class's motion parameters and every
/// nuisance. A pure function of (track, class, seed); <see cref="Renderer"/> turns it into frames.
/// </summary>
public sealed record VideoScript(
    MotionClass Class,
    int Frames,
    Sprite Actor,
    double Size,
    double StartX,
    double StartY,
    double Angle,
    double Speed,
    double Spin,
    double Zoom,
    int FadePeriod,
    double FadePhase,
    Backdrop Backdrop,
    Rgb BackdropA,
    Rgb BackdropB,
    double BackdropScale,
    IReadOnlyList<(Sprite Sprite, double X, double Y, double Size, double Angle)> Clutter,
    (Sprite Sprite, double X, double Y, double Size, double Vx, double Vy)? Distractor,
    double Noise,
    int Jitter,
    int BackdropSeed,
    int NoiseSeed);
