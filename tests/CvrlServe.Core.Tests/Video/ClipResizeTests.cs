using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public sealed class ClipResizeTests
{
    /// <summary>A grey frame (r = g = b) from one value per pixel, row-major.</summary>
    private static byte[] Grey(params byte[] pixels) => pixels.SelectMany(p => new[] { p, p, p }).ToArray();

    private static byte[] Resize(byte[] source, int width, int height, CropBox box, int outWidth, int outHeight, bool flip = false)
    {
        var output = new byte[outWidth * outHeight * 3];
        ClipResize.Bilinear(source, width, height, box, output, outWidth, outHeight, flip);
        return output.Where((_, i) => i % 3 == 0).ToArray();
    }

    [Fact]
    public void Bilinear_SameSizeWholeFrame_Identity()
    {
        var source = Enumerable.Range(0, 5 * 4 * 3).Select(i => (byte)(i * 7)).ToArray();
        var output = new byte[source.Length];
        ClipResize.Bilinear(source, 5, 4, new CropBox(0, 0, 5, 4), output, 5, 4, flip: false);
        Assert.Equal(source, output);
    }

    [Fact]
    public void Bilinear_Upscale2To4_HalfPixelCentresAndTruncation()
    {
        // Half-pixel centres: output i samples (i + 0.5) × 2/4 − 0.5 = −0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped
        // to 1): 0, 24.75, 74.25, 99, truncated to 24 and 74. align_corners would give 0, 33, 66, 99; rounding 25.
        Assert.Equal([0, 24, 74, 99], Resize(Grey(0, 99), 2, 1, new CropBox(0, 0, 2, 1), 4, 1));
        // The same along y.
        Assert.Equal([0, 24, 74, 99], Resize(Grey(0, 99), 1, 2, new CropBox(0, 0, 1, 2), 1, 4));
    }

    [Fact]
    public void Bilinear_Downscale4To2_AveragesPairsWithoutAntialias()
    {
        // Output 0 samples 0.5, output 1 samples 2.5: the means of pixel pairs, 35.5 truncated to 35.
        Assert.Equal([15, 35], Resize(Grey(10, 20, 30, 41), 4, 1, new CropBox(0, 0, 4, 1), 2, 1));
        // Downscaling 8 → 2 reads only pixels 1, 2 and 5, 6 (no antialiasing): the others do not matter.
        Assert.Equal([15, 55], Resize(Grey(250, 10, 20, 250, 250, 50, 60, 250), 8, 1, new CropBox(0, 0, 8, 1), 2, 1));
    }

    [Fact]
    public void Bilinear_CropAndFlip_ReadsOnlyTheBox_MirrorsTheOutput()
    {
        var source = Grey(1, 2, 3, 4, 5, 6, 7, 8, 9); // 3×3
        Assert.Equal([5, 6, 8, 9], Resize(source, 3, 3, new CropBox(1, 1, 2, 2), 2, 2));
        Assert.Equal([6, 5, 9, 8], Resize(source, 3, 3, new CropBox(1, 1, 2, 2), 2, 2, flip: true));
        // Sampling is clamped to the box, not the frame: upscaling [5, 6] samples −1/3, 0, 1/3, 2/3, 1, 4/3 and never blends in 4.
        Assert.Equal([5, 5, 5, 5, 6, 6], Resize(source, 3, 3, new CropBox(1, 1, 2, 1), 6, 1));
    }

    [Fact]
    public void CropResize_EveryFrameSameBox()
    {
        var frames = Grey(1, 2, 3, 4).Concat(Grey(11, 12, 13, 14)).ToArray(); // two 2×2 frames
        var clip = new DecodedClip(0, 0, [0, 1], TimeSpan.Zero, TimeSpan.FromSeconds(1), 2, 2, frames);
        var resized = ClipResize.CropResize(clip, new CropBox(1, 0, 1, 2), 1, 2, flip: false);
        Assert.Equal((1, 2), (resized.Width, resized.Height));
        Assert.Equal(Grey(2, 4).Concat(Grey(12, 14)), resized.Rgb);
    }

    /// <summary>Replays fixed draws: NextDouble from a list, Next(n) as the given fraction of n.</summary>
    private sealed class Scripted(params double[] draws) : Random
    {
        private int _next;

        public override double NextDouble() => draws[_next++];

        public override int Next(int maxValue) => (int)(draws[_next++] * maxValue);
    }

    [Fact]
    public void RandomResizedCrop_WholeAreaAtAspect2_WidthClampedToTheFrameNotRedrawn()
    {
        // Area 1 × 100 × 100, aspect 2: height √5000 = 70.7 → 70, width 141.4 → clamped to 100; y uniform in [0, 30].
        var box = RandomResizedCrop.Protocol.Draw(new Scripted(1.0, 1.0, 0.5, 0.0), 100, 100);
        Assert.Equal(new CropBox(0, 15, 100, 70), box);
        // Area 0.3, aspect 0.5 on 200 × 100: height √(6000/0.5) = 109.5 → clamped to 100, width 54.
        box = RandomResizedCrop.Protocol.Draw(new Scripted(0.0, 0.0, 0.0, 0.999), 200, 100);
        Assert.Equal(new CropBox(146, 0, 54, 100), box);
    }

    [Fact]
    public void RandomResizedCrop_ManyDraws_InsideTheFrame_AreaAndAspectInRangeUnlessClamped()
    {
        var random = new Random(7);
        for (int i = 0; i < 2000; i++)
        {
            var box = RandomResizedCrop.Protocol.Draw(random, 171, 128);
            Assert.True(box.X >= 0 && box.Y >= 0 && box.X + box.Width <= 171 && box.Y + box.Height <= 128, $"{box}");
            if (box.Width < 171 && box.Height < 128)
            {
                double area = (double)box.Width * box.Height / (171 * 128);
                double aspect = (double)box.Width / box.Height;
                Assert.InRange(area, 0.28, 1.0);
                Assert.InRange(aspect, 0.47, 2.05);
            }
        }
    }
}
