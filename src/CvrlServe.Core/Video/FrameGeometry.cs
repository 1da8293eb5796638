namespace CvrlServe.Core.Video;

/// <summary>Which square crops of the resized frame a view takes.</summary>
public enum CropMode
{
    /// <summary>The whole resized frame.</summary>
    None,

    /// <summary>One centred crop.</summary>
    Center,

    /// <summary>Three crops along the long side (start, centre, end), centred on the short side: CVRL's test views.</summary>
    ThreeAlongLongSide,
}

/// <summary>Resampling filter for the resize (CVRL uses bilinear without antialiasing).</summary>
public enum ResizeInterpolation
{
    Bilinear,
    Bicubic,
    Area,
    Nearest,
}

/// <summary>A crop rectangle in the resized frame.</summary>
public readonly record struct CropBox(int X, int Y, int Width, int Height);

/// <summary>
/// The geometry of decoded frames: resize so the short side is <see cref="ShortSide"/> (or keep the
/// display size when null), then crop. ffmpeg does the resize; crops are copied from its output, so three
/// crops cost one decode.
/// </summary>
public sealed record FrameGeometry(
    int? ShortSide,
    CropMode Crop = CropMode.None,
    int CropSize = 0,
    ResizeInterpolation Interpolation = ResizeInterpolation.Bilinear)
{
    /// <summary>Frames at their display size, uncropped.</summary>
    public static FrameGeometry FullFrame { get; } = new(ShortSide: null);

    /// <summary>Resize the short side to <paramref name="shortSide"/>, then take a centred square of <paramref name="crop"/>.</summary>
    public static FrameGeometry CenterCrop(int shortSide, int crop) => new(shortSide, CropMode.Center, crop);

    /// <summary>Resize the short side to <paramref name="shortSide"/>, then take three squares of <paramref name="crop"/> along the long side.</summary>
    public static FrameGeometry ThreeCrops(int shortSide, int crop) => new(shortSide, CropMode.ThreeAlongLongSide, crop);

    /// <summary>The size ffmpeg scales each frame to, from the display size.</summary>
    public (int Width, int Height) ResizedSize(int width, int height)
    {
        if (ShortSide is not { } side)
        {
            return (width, height);
        }

        if (side < 1)
        {
            throw new InvalidRequestException($"The short side must be positive (got {side}).");
        }

        return width <= height
            ? (side, Math.Max(side, (int)Math.Round((double)height * side / width)))
            : (Math.Max(side, (int)Math.Round((double)width * side / height)), side);
    }

    /// <summary>The crop boxes within a resized frame of the given size, in view order.</summary>
    public IReadOnlyList<CropBox> Crops(int width, int height)
    {
        if (Crop == CropMode.None)
        {
            return [new CropBox(0, 0, width, height)];
        }

        if (CropSize < 1 || CropSize > Math.Min(width, height))
        {
            throw new InvalidRequestException($"A {CropSize}×{CropSize} crop does not fit a {width}×{height} frame.");
        }

        int c = CropSize;
        int cx = (width - c) / 2;
        int cy = (height - c) / 2;
        if (Crop == CropMode.Center)
        {
            return [new CropBox(cx, cy, c, c)];
        }

        return width >= height
            ? [new CropBox(0, cy, c, c), new CropBox(cx, cy, c, c), new CropBox(width - c, cy, c, c)]
            : [new CropBox(cx, 0, c, c), new CropBox(cx, cy, c, c), new CropBox(cx, height - c, c, c)];
    }

    internal string ScaleFlags => Interpolation switch
    {
        ResizeInterpolation.Bilinear => "bilinear",
        ResizeInterpolation.Bicubic => "bicubic",
        ResizeInterpolation.Area => "area",
        ResizeInterpolation.Nearest => "neighbor",
        _ => throw new ArgumentOutOfRangeException(nameof(Interpolation), Interpolation, null),
    };
}
