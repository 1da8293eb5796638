using CvrlServe.Training.Augment;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Augment;

public class ClipAugmenterTests
{
    /// <summary>T copies of one textured frame: any per-frame difference in the output is the augmentation's.</summary>
    private static byte[] RepeatedFrame(int frames, int height, int width)
    {
        var random = new Random(1);
        var frame = new byte[height * width * 3];
        random.NextBytes(frame);
        return Enumerable.Repeat(frame, frames).SelectMany(f => f).ToArray();
    }

    [Fact]
    public void Apply_Consistent_EveryFrameGetsTheSameCropFlipAndColour()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions { CropSize = 32 });
        byte[] rgb = RepeatedFrame(4, 40, 48);
        for (int seed = 0; seed < 20; seed++)
        {
            using var clip = augmenter.Apply(rgb, 4, 40, 48, seed % 2, new Random(seed));
            Assert.Equal([3L, 4, 32, 32], clip.shape);
            Assert.InRange(clip.min().item<float>(), 0f, 1f);
            Assert.InRange(clip.max().item<float>(), 0f, 1f);
            for (int t = 1; t < 4; t++)
            {
                Assert.Equal(0f, (clip[.., t] - clip[.., 0]).abs().max().item<float>());
            }
        }
    }

    [Fact]
    public void Apply_Inconsistent_FramesDiffer()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions { CropSize = 32, TemporallyConsistent = false });
        byte[] rgb = RepeatedFrame(4, 40, 48);
        using var clip = augmenter.Apply(rgb, 4, 40, 48, 0, new Random(3));
        Assert.Equal([3L, 4, 32, 32], clip.shape);
        Assert.True((clip[.., 1] - clip[.., 0]).abs().max().item<float>() > 0.05f);
    }

    [Fact]
    public void Apply_SameRandomState_SameOutput()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions { CropSize = 24 });
        byte[] rgb = RepeatedFrame(2, 30, 30);
        using var a = augmenter.Apply(rgb, 2, 30, 30, 1, new Random(9));
        using var b = augmenter.Apply(rgb, 2, 30, 30, 1, new Random(9));
        Assert.Equal(0f, (a - b).abs().max().item<float>());
    }

    [Fact]
    public void Apply_CropAndFlipOnly_KeepsPixelValuesOfAFlatFrame()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions { CropSize = 16 }.CropAndFlipOnly());
        byte[] rgb = Enumerable.Repeat(new byte[] { 200, 100, 50 }, 2 * 20 * 20).SelectMany(p => p).ToArray();
        using var clip = augmenter.Apply(rgb, 2, 20, 20, 0, new Random(4));
        Assert.Equal(200 / 255f, clip[0].mean().item<float>(), 4);
        Assert.Equal(50 / 255f, clip[2].mean().item<float>(), 4);
    }

    [Fact]
    public void Contrast_UsesTheWholeClipsMean()
    {
        // Frame 0 dark (0.2), frame 1 bright (0.6): factor 0 collapses both to the clip mean 0.4.
        using var x = cat([full([1, 3, 2, 2], 0.2f), full([1, 3, 2, 2], 0.6f)], 0);
        using var y = ColorOps.Contrast(x, 0);
        Assert.Equal(0.4f, y.min().item<float>(), 5);
        Assert.Equal(0.4f, y.max().item<float>(), 5);
    }

    [Fact]
    public void AdjustHsv_IdentityAndAThirdTurn()
    {
        using var x = rand([2, 3, 5, 5]);
        using var same = ColorOps.AdjustHsv(x, 0, 1);
        Assert.True((same - x).abs().max().item<float>() < 1e-5f);

        using var red = tensor(new float[] { 1, 0, 0 }, [1, 3, 1, 1]);
        using var green = ColorOps.AdjustHsv(red, 1.0 / 3, 1);
        Assert.Equal([0f, 1f, 0f], green.flatten().data<float>().ToArray().Select(v => MathF.Round(v, 4)));
        using var grey = ColorOps.AdjustHsv(red, 0, 0);
        Assert.Equal([1f, 1f, 1f], grey.flatten().data<float>().ToArray().Select(v => MathF.Round(v, 4)));
    }

    [Fact]
    public void GaussianBlur_KeepsFlatInteriorAndDarkensZeroPaddedEdges()
    {
        using var x = ones([1, 3, 32, 32]);
        using var y = ColorOps.GaussianBlur(x, radius: 5, sigma: 2.0);
        Assert.Equal(1f, y[0, 0, 16, 16].item<float>(), 4);
        Assert.True(y[0, 0, 0, 0].item<float>() < 0.5f);
    }

    [Fact]
    public void CropBox_AreaAndAspectWithinRanges()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions());
        var random = new Random(2);
        for (int i = 0; i < 500; i++)
        {
            var (x, y, w, h) = augmenter.CropBox(240, 320, random);
            Assert.InRange(x + w, 1, 320);
            Assert.InRange(y + h, 1, 240);
            Assert.InRange(w * h / (240.0 * 320), 0.28, 1.0);
            Assert.InRange(w / (double)h, 0.45, 2.1);
        }
    }

    [Theory]
    [InlineData(240, 320)]
    [InlineData(320, 240)]
    [InlineData(64, 64)]
    [InlineData(17, 100)]
    public void CropBox_AnyRanges_EveryBoxInsideTheFrame(int height, int width)
    {
        var options = new AugmentOptions[]
        {
            new(),
            new() { MinArea = 0.05, MaxArea = 1.0, MinAspect = 0.2, MaxAspect = 5.0 },
            new() { MinArea = 0.9, MaxArea = 1.0, MinAspect = 0.25, MaxAspect = 4.0 },
        };
        var random = new Random(3);
        foreach (var option in options)
        {
            var augmenter = new ClipAugmenter(option);
            for (int i = 0; i < 500; i++)
            {
                var (x, y, w, h) = augmenter.CropBox(height, width, random);
                Assert.True(w >= 1 && h >= 1 && x >= 0 && y >= 0 && x + w <= width && y + h <= height, $"({x}, {y}, {w}, {h}) in {width}x{height}");
            }
        }
    }

    [Fact]
    public void CropBox_LargeBoxes_ClampedToTheFrameKeepingTheirAspect()
    {
        // Area up to the whole frame at aspects 0.5–2 on a 4:3 frame: most draws ask for a box taller or wider
        // than the frame. The reference clamps the height range to what fits, so boxes touch the frame edges
        // instead of being redrawn, and every box keeps its drawn aspect (up to the rounding of its width).
        var augmenter = new ClipAugmenter(new AugmentOptions { MinArea = 0.3, MaxArea = 1.0, MinAspect = 0.5, MaxAspect = 2.0 });
        var random = new Random(4);
        int fullHeight = 0, fullWidth = 0;
        double lowest = double.MaxValue, highest = 0;
        for (int i = 0; i < 4000; i++)
        {
            var (_, _, w, h) = augmenter.CropBox(240, 320, random);
            Assert.False(w == 320 && h == 240, "a whole-frame box means every attempt was rejected");
            fullHeight += h == 240 ? 1 : 0;
            fullWidth += w == 320 ? 1 : 0;
            double aspect = w / (double)h;
            Assert.InRange(aspect, 0.5 - 0.5 / h, 2.0 + 0.5 / h);
            lowest = Math.Min(lowest, aspect);
            highest = Math.Max(highest, aspect);
        }

        Assert.True(fullHeight > 10, $"{fullHeight} boxes at the frame's full height");
        Assert.True(fullWidth > 10, $"{fullWidth} boxes at the frame's full width");
        Assert.InRange(lowest, 0.49, 0.53);
        Assert.InRange(highest, 1.95, 2.01);
    }

    [Fact]
    public void CropBox_SameSeed_SameBoxes()
    {
        var augmenter = new ClipAugmenter(new AugmentOptions());
        var first = new Random(5);
        var second = new Random(5);
        for (int i = 0; i < 200; i++)
        {
            Assert.Equal(augmenter.CropBox(256, 340, first), augmenter.CropBox(256, 340, second));
        }
    }
}
