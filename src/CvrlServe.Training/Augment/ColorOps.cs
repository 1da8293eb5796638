using static TorchSharp.torch;

namespace CvrlServe.Training.Augment;

/// <summary>Colour operations on [T, 3, H, W] tensors in [0, 1], statistics over the whole clip.</summary>
internal static class ColorOps
{
    /// <summary>(x − mean) · f + mean, the mean per channel over the whole clip (all frames, all pixels).</summary>
    public static Tensor Contrast(Tensor x, double factor)
    {
        var mean = x.mean([0, 2, 3], keepdim: true);
        return (x - mean) * (float)factor + mean;
    }

    /// <summary>Luma 0.2989 R + 0.5870 G + 0.1140 B, repeated to three channels.</summary>
    public static Tensor Grayscale(Tensor x)
    {
        var luma = x[.., 0..1] * 0.2989f + x[.., 1..2] * 0.5870f + x[.., 2..3] * 0.1140f;
        return luma.expand(-1, 3, -1, -1);
    }

    /// <summary>Separable Gaussian blur with zero padding, one σ for every frame, kernel 2·radius + 1 taps.</summary>
    public static Tensor GaussianBlur(Tensor x, int radius, double sigma)
    {
        if (radius < 1)
        {
            return x;
        }

        var offsets = arange(-radius, radius + 1, dtype: ScalarType.Float32, device: x.device);
        var kernel = (-(offsets * offsets) / (float)(2 * sigma * sigma)).exp();
        kernel /= kernel.sum();
        var vertical = kernel.reshape(1, 1, -1, 1).expand(3, 1, -1, 1);
        var horizontal = kernel.reshape(1, 1, 1, -1).expand(3, 1, 1, -1);
        x = nn.functional.conv2d(x, horizontal, padding: [0, radius], groups: 3);
        return nn.functional.conv2d(x, vertical, padding: [radius, 0], groups: 3);
    }

    /// <summary>Shifts hue by <paramref name="hueDelta"/> (in turns) and scales saturation by <paramref name="saturation"/>, through HSV.</summary>
    public static Tensor AdjustHsv(Tensor x, double hueDelta, double saturation)
    {
        var r = x[.., 0];
        var g = x[.., 1];
        var b = x[.., 2];
        var max = x.amax([1]);
        var min = x.amin([1]);
        var delta = max - min;
        var safeDelta = where(delta > 0, delta, ones_like(delta));
        var hue = where(max == r, ((g - b) / safeDelta).remainder(6f),
                  where(max == g, (b - r) / safeDelta + 2f, (r - g) / safeDelta + 4f)) / 6f;
        hue = where(delta > 0, hue, zeros_like(hue));
        var sat = where(max > 0, delta / where(max > 0, max, ones_like(max)), zeros_like(max));
        hue = (hue + (float)hueDelta).remainder(1f);
        sat = (sat * (float)saturation).clamp(0, 1);

        // HSV → RGB: channel n is v − v·s·clamp(min(k, 4 − k), 0, 1) with k = (n + 6h) mod 6, n = 5, 3, 1.
        Tensor Channel(float n)
        {
            var k = (hue * 6f + n).remainder(6f);
            return max - max * sat * minimum(k, 4f - k).clamp(0, 1);
        }

        return stack([Channel(5), Channel(3), Channel(1)], 1);
    }
}
