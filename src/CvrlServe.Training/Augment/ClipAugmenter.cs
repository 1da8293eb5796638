using static TorchSharp.torch;

namespace CvrlServe.Training.Augment;

/// <summary>
/// Applies <see cref="AugmentOptions"/> to one decoded clip: uint8 rgb [T, H, W, 3] in, float [3, T, S, S]
/// in [0, 1] out. Every random draw comes from the <see cref="Random"/> passed in, so a clip's
/// augmentation is a function of (seed, step, sample). In consistent mode the whole clip is transformed
/// as one tensor with one set of parameters; in inconsistent mode each frame is its own one-frame clip.
/// </summary>
public sealed class ClipAugmenter(AugmentOptions options)
{
    public AugmentOptions Options => options;

    /// <param name="rgb">Frames laid out [T, H, W, 3].</param>
    /// <param name="clipIndex">0 for the first clip of a pair, 1 for the second (blur and solarize differ).</param>
    public Tensor Apply(byte[] rgb, int frames, int height, int width, int clipIndex, Random random, Device? device = null)
    {
        ArgumentNullException.ThrowIfNull(rgb);
        ArgumentNullException.ThrowIfNull(random);
        using var scope = NewDisposeScope();
        // [T, H, W, 3] uint8 → [T, 3, H, W] float in 0..255.
        var clip = tensor(rgb, [frames, height, width, 3], device: device).permute(0, 3, 1, 2).to_type(ScalarType.Float32);
        Tensor result;
        if (options.TemporallyConsistent)
        {
            result = Transform(clip, clipIndex, random);
        }
        else
        {
            var perFrame = new Tensor[frames];
            for (int t = 0; t < frames; t++)
            {
                perFrame[t] = Transform(clip[t..(t + 1)], clipIndex, random);
            }

            result = cat(perFrame, 0);
        }

        return scope.MoveToOuter(result.permute(1, 0, 2, 3).contiguous());
    }

    /// <summary>The centre <paramref name="size"/>² square of every frame as [3, T, S, S] in [0, 1]: evaluation, no randomness.</summary>
    public static Tensor CenterCrop(byte[] rgb, int frames, int height, int width, int size)
    {
        using var scope = NewDisposeScope();
        int y = (height - size) / 2;
        int x = (width - size) / 2;
        var clip = tensor(rgb, [frames, height, width, 3])[.., y..(y + size), x..(x + size), ..];
        return scope.MoveToOuter((clip.permute(3, 0, 1, 2).to_type(ScalarType.Float32) / 255f).contiguous());
    }

    /// <summary>[T, 3, H, W] in 0..255 → [T, 3, S, S] in [0, 1], one parameter draw for all T frames.</summary>
    private Tensor Transform(Tensor clip, int clipIndex, Random random)
    {
        int height = (int)clip.shape[2];
        int width = (int)clip.shape[3];
        var box = CropBox(height, width, random);
        var x = clip[.., .., box.Y..(box.Y + box.H), box.X..(box.X + box.W)];
        // Bilinear without antialiasing, then back to integers as the reference's uint8 cast (truncation).
        x = nn.functional.interpolate(x, [options.CropSize, options.CropSize], mode: InterpolationMode.Bilinear, align_corners: false)
            .floor().clamp(0, 255) / 255f;
        if (random.NextDouble() < options.FlipProbability)
        {
            x = x.flip(3);
        }

        if (random.NextDouble() < options.JitterProbability)
        {
            x = ColorJitter(x, random);
        }

        if (random.NextDouble() < options.GrayscaleProbability)
        {
            x = ColorOps.Grayscale(x);
        }

        if (random.NextDouble() < options.BlurProbability[clipIndex])
        {
            x = ColorOps.GaussianBlur(x, options.CropSize / 10 / 2, options.MinSigma + random.NextDouble() * (options.MaxSigma - options.MinSigma));
        }

        if (random.NextDouble() < options.SolarizeProbability[clipIndex])
        {
            x = where(x < 0.5f, x, 1f - x);
        }

        return x.clamp(0, 1);
    }

    /// <summary>SimCLR-v2 colour jitter: brightness, contrast, saturation and hue in a random order, each clipped to [0, 1].</summary>
    private Tensor ColorJitter(Tensor x, Random random)
    {
        int[] order = [0, 1, 2, 3];
        random.Shuffle(order);
        foreach (int op in order)
        {
            x = op switch
            {
                0 => x * (float)Factor(options.Brightness, random),
                1 => ColorOps.Contrast(x, Factor(options.Contrast, random)),
                2 => ColorOps.AdjustHsv(x, 0, Factor(options.Saturation, random)),
                _ => ColorOps.AdjustHsv(x, (random.NextDouble() * 2 - 1) * options.Hue, 1),
            };
            x = x.clamp(0, 1);
        }

        return x;
    }

    private static double Factor(double strength, Random random) => 1 - strength + random.NextDouble() * 2 * strength;

    /// <summary>
    /// The reference's crop box: TF's <c>sample_distorted_bounding_box</c> as CVRL's input pipeline calls it
    /// (the whole frame as the object box, <c>min_object_covered</c> 0.1, 100 attempts). One attempt draws the
    /// aspect w/h uniformly in [MinAspect, MaxAspect]; then the height uniformly, in whole pixels, between the
    /// heights whose box at that aspect has MinArea and MaxArea of the frame, the upper bound CLAMPED to the
    /// tallest box that fits the frame (by its width and its height), so a large box is shrunk to fit, keeping
    /// its aspect, not redrawn; width = round(height × aspect); the offset uniform over [0, frame − box), TF's
    /// range (the last offset is never drawn). An attempt fails only when even the clamped box is below MinArea
    /// (an aspect far from the frame's with a large MinArea); after 100 failures the whole frame is used.
    /// With the reference ranges on video frames attempts practically never fail.
    /// </summary>
    internal (int X, int Y, int W, int H) CropBox(int height, int width, Random random)
    {
        double frame = (double)height * width;
        double minArea = options.MinArea * frame;
        double maxArea = options.MaxArea * frame;
        for (int attempt = 0; attempt < 100; attempt++)
        {
            double aspect = options.MinAspect + random.NextDouble() * (options.MaxAspect - options.MinAspect);
            int Width(int h) => (int)Math.Round(h * aspect);
            int h = (int)Math.Round(Math.Sqrt(minArea / aspect));
            int maxH = (int)Math.Round(Math.Sqrt(maxArea / aspect));
            if (Width(maxH) > width)
            {
                maxH = (int)((width + 0.5 - 1e-7) / aspect);
                if (Width(maxH) > width)
                {
                    maxH--;
                }
            }

            maxH = Math.Min(maxH, height);
            h = Math.Min(h, maxH);
            h += random.Next(maxH - h + 1);
            int w = Width(h);
            // Rounding may leave the area a row outside the range: one row more, or one fewer, as TF tries.
            if ((double)w * h < minArea)
            {
                h++;
                w = Width(h);
            }

            if ((double)w * h > maxArea)
            {
                h--;
                w = Width(h);
            }

            double area = (double)w * h;
            if (area < minArea || area > maxArea || area < 0.1 * frame || w > width || h > height || w <= 0 || h <= 0)
            {
                continue;
            }

            int y = h < height ? random.Next(height - h) : 0;
            int x = w < width ? random.Next(width - w) : 0;
            return (x, y, w, h);
        }

        return (0, 0, width, height);
    }
}
