namespace CvrlServe.Core.Video;

/// <summary>
/// A random resized crop's box, as CVRL's linear-evaluation input pipeline draws it (cvrl-method.md §7):
/// area uniform in [<see cref="MinArea"/>, <see cref="MaxArea"/>] of the frame, aspect (w/h) uniform in
/// [<see cref="MinAspect"/>, <see cref="MaxAspect"/>], height √(area/aspect) and width height × aspect,
/// each clamped to the frame (never redrawn), position uniform. Pure given the random source.
/// </summary>
public sealed record RandomResizedCrop(double MinArea = 0.3, double MaxArea = 1.0, double MinAspect = 0.5, double MaxAspect = 2.0)
{
    /// <summary>The protocol's ranges: area 0.3–1, aspect 0.5–2.</summary>
    public static RandomResizedCrop Protocol { get; } = new();

    public CropBox Draw(Random random, int width, int height)
    {
        ArgumentNullException.ThrowIfNull(random);
        if (width < 1 || height < 1 || !(MinArea > 0 && MinArea <= MaxArea && MaxArea <= 1 && MinAspect > 0 && MinAspect <= MaxAspect))
        {
            throw new ArgumentOutOfRangeException(nameof(width), $"A {width}×{height} frame or ranges area [{MinArea}, {MaxArea}], aspect [{MinAspect}, {MaxAspect}] cannot give a crop.");
        }

        double area = (MinArea + random.NextDouble() * (MaxArea - MinArea)) * width * height;
        double aspect = MinAspect + random.NextDouble() * (MaxAspect - MinAspect);
        double h = Math.Sqrt(area / aspect);
        int cropHeight = Math.Clamp((int)h, 1, height);
        int cropWidth = Math.Clamp((int)(h * aspect), 1, width);
        int y = random.Next(height - cropHeight + 1);
        int x = random.Next(width - cropWidth + 1);
        return new CropBox(x, y, cropWidth, cropHeight);
    }
}

/// <summary>Crop, bilinear resize and flip of rgb24 clips in C#: the probe's training augmentation after ffmpeg's short-side resize.</summary>
public static class ClipResize
{
    /// <summary>
    /// Every frame of <paramref name="clip"/> cropped to <paramref name="box"/>, resized to
    /// <paramref name="width"/>×<paramref name="height"/> and mirrored when <paramref name="flip"/>.
    /// </summary>
    public static DecodedClip CropResize(DecodedClip clip, CropBox box, int width, int height, bool flip)
    {
        ArgumentNullException.ThrowIfNull(clip);
        int frameBytes = width * height * 3;
        var rgb = new byte[clip.Frames.Count * frameBytes];
        for (int t = 0; t < clip.Frames.Count; t++)
        {
            Bilinear(clip.Frame(t), clip.Width, clip.Height, box, rgb.AsSpan(t * frameBytes, frameBytes), width, height, flip);
        }

        return clip with { Width = width, Height = height, Rgb = rgb };
    }

    /// <summary>
    /// Bilinear resize of the <paramref name="box"/> of one rgb24 frame, with half-pixel centres
    /// (align_corners = false: output pixel i samples the crop at (i + 0.5) × in/out − 0.5, clamped to the
    /// crop), no antialiasing, computed in float32 and truncated to uint8 as CVRL's reference casts back.
    /// With <paramref name="flip"/> the output is mirrored left to right.
    /// </summary>
    public static void Bilinear(ReadOnlySpan<byte> source, int sourceWidth, int sourceHeight, CropBox box, Span<byte> destination, int width, int height, bool flip)
    {
        if (box.Width < 1 || box.Height < 1 || box.X < 0 || box.Y < 0 || box.X + box.Width > sourceWidth || box.Y + box.Height > sourceHeight)
        {
            throw new ArgumentOutOfRangeException(nameof(box), box, $"The box does not lie within the {sourceWidth}×{sourceHeight} frame.");
        }

        if (width < 1 || height < 1 || source.Length != sourceWidth * sourceHeight * 3 || destination.Length != width * height * 3)
        {
            throw new ArgumentException($"Buffers of {source.Length} and {destination.Length} bytes do not hold {sourceWidth}×{sourceHeight} and {width}×{height} rgb24 frames.", nameof(destination));
        }

        var x0 = new int[width];
        var x1 = new int[width];
        var fx = new float[width];
        Axis(box.X, box.Width, width, x0, x1, fx);
        var y0 = new int[height];
        var y1 = new int[height];
        var fy = new float[height];
        Axis(box.Y, box.Height, height, y0, y1, fy);
        int row = sourceWidth * 3;
        for (int y = 0; y < height; y++)
        {
            int top = y0[y] * row;
            int bottom = y1[y] * row;
            float wy = fy[y];
            for (int x = 0; x < width; x++)
            {
                int left = x0[x] * 3;
                int right = x1[x] * 3;
                float wx = fx[x];
                int output = (y * width + (flip ? width - 1 - x : x)) * 3;
                for (int c = 0; c < 3; c++)
                {
                    float upper = source[top + left + c] + (source[top + right + c] - source[top + left + c]) * wx;
                    float lower = source[bottom + left + c] + (source[bottom + right + c] - source[bottom + left + c]) * wx;
                    float value = upper + (lower - upper) * wy;
                    destination[output + c] = (byte)Math.Clamp(value, 0f, 255f); // truncates, as a cast to uint8 does
                }
            }
        }
    }

    /// <summary>Source positions along one axis: the two neighbours and the weight of the second.</summary>
    private static void Axis(int start, int length, int size, int[] low, int[] high, float[] weight)
    {
        float scale = (float)length / size;
        for (int i = 0; i < size; i++)
        {
            float position = Math.Clamp((i + 0.5f) * scale - 0.5f, 0f, length - 1);
            int floor = (int)position;
            low[i] = start + floor;
            high[i] = start + Math.Min(floor + 1, length - 1);
            weight[i] = position - floor;
        }
    }
}
