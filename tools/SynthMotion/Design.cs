namespace SynthMotion;

/// <summary>How the actor moves: the motion half of every class.</summary>
public enum Motion
{
    Right,
    Left,
    Up,
    Down,
    ZoomIn,
    ZoomOut,
    RotateClockwise,
    RotateCounterClockwise,
    FadeIn,
    FadeOut,
}

/// <summary>What the actor of the scene-and-motion track is; each kind has its own look and setting.</summary>
public enum ActorKind
{
    /// <summary>Any shape, colour, texture and background, drawn independently of the class.</summary>
    Random,

    /// <summary>A segmented disk in warm colours on grass.</summary>
    Ball,

    /// <summary>A planked square in browns on a tiled floor.</summary>
    Crate,

    /// <summary>An ellipse with a tail in blues in water.</summary>
    Fish,

    /// <summary>A cross-braced diamond in magentas against the sky.</summary>
    Kite,
}

/// <summary>One class: its folder name, the actor kind and the motion.</summary>
public sealed record MotionClass(string Name, ActorKind Kind, Motion Motion);

/// <summary>
/// The two tracks (docs/synthmotion.md says why both exist). motion-only: 10 classes defined by motion
/// alone, every appearance nuisance drawn independently of the class, so no single frame tells the class.
/// scene-and-motion: 4 actor kinds × 4 motions, so appearance tells the kind and only motion the rest.
/// </summary>
public sealed record Track(string Name, IReadOnlyList<MotionClass> Classes, int TrainPerClass, int TestPerClass)
{
    public static Track MotionOnly { get; } = new("motion-only",
        Enum.GetValues<Motion>().Select(m => new MotionClass(Slug(m), ActorKind.Random, m)).ToArray(), TrainPerClass: 240, TestPerClass: 40);

    public static Track SceneAndMotion { get; } = new("scene-and-motion",
        (from kind in new[] { ActorKind.Ball, ActorKind.Crate, ActorKind.Fish, ActorKind.Kite }
         from motion in new[] { Motion.Right, Motion.Up, Motion.ZoomIn, Motion.RotateClockwise }
         select new MotionClass($"{kind.ToString().ToLowerInvariant()}-{Slug(motion)}", kind, motion)).ToArray(), TrainPerClass: 150, TestPerClass: 30);

    public static IReadOnlyList<Track> All { get; } = [MotionOnly, SceneAndMotion];

    public static Track Find(string name) =>
        All.FirstOrDefault(t => t.Name == name) ?? throw new ArgumentException($"Unknown track '{name}'; tracks: {string.Join(", ", All.Select(t => t.Name))}.");

    private static string Slug(Motion motion) => motion switch
    {
        Motion.Right => "right",
        Motion.Left => "left",
        Motion.Up => "up",
        Motion.Down => "down",
        Motion.ZoomIn => "zoom-in",
        Motion.ZoomOut => "zoom-out",
        Motion.RotateClockwise => "rotate-cw",
        Motion.RotateCounterClockwise => "rotate-ccw",
        Motion.FadeIn => "fade-in",
        _ => "fade-out",
    };
}

/// <summary>
/// The ranges every video's nuisances are drawn from (uniformly, per video, from the video's own seed).
/// None depends on the class except the actor kind's look in the scene-and-motion track.
/// </summary>
public sealed record RenderSettings
{
    public int Width { get; init; } = 80;

    public int Height { get; init; } = 64;

    public int Fps { get; init; } = 25;

    public double MinSeconds { get; init; } = 4;

    public double MaxSeconds { get; init; } = 5;

    /// <summary>Actor half-extent in pixels (a 64-px-high frame holds an actor 18–28 px across).</summary>
    public double MinSize { get; init; } = 9;

    public double MaxSize { get; init; } = 14;

    /// <summary>Translation speed, pixels per frame (10–19 px over a 16-frame span).</summary>
    public double MinSpeed { get; init; } = 0.6;

    public double MaxSpeed { get; init; } = 1.2;

    /// <summary>Rotation speed, degrees per frame.</summary>
    public double MinSpin { get; init; } = 3;

    public double MaxSpin { get; init; } = 6;

    /// <summary>Zoom: the scale changes by this factor over the whole video, monotonically.</summary>
    public double MinZoom { get; init; } = 2.2;

    public double MaxZoom { get; init; } = 3.0;

    /// <summary>Fades: a sawtooth of opacity 0.1 → 1 (or back) with this period, in frames.</summary>
    public int MinFadePeriod { get; init; } = 30;

    public int MaxFadePeriod { get; init; } = 45;

    public double DistractorProbability { get; init; } = 0.5;

    /// <summary>Distractors drift slower than the slowest actor, in a random direction.</summary>
    public double MaxDistractorSpeed { get; init; } = 0.2;

    public int MaxClutter { get; init; } = 3;

    /// <summary>Camera jitter: the whole frame shifts by up to this many pixels, independently per frame.</summary>
    public int MaxJitter { get; init; } = 1;

    /// <summary>Per-pixel Gaussian noise, standard deviation drawn in [0, this] per video (0–255 scale).</summary>
    public double MaxNoise { get; init; } = 6;

    /// <summary>Share of files encoded as VP9 in WebM; the rest are H.264 in MP4.</summary>
    public double WebmShare { get; init; } = 0.1;
}
