using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class ClipTensorTests
{
    private static DecodedClip Clip(byte[] rgb, int frames, int h, int w) =>
        new(0, 0, Enumerable.Range(0, frames).ToArray(), TimeSpan.Zero, TimeSpan.Zero, w, h, rgb);

    [Fact]
    public void ToArray_RgbThwc_BecomesChannelsFirstInUnitRange()
    {
        // 2 frames of 1×2 pixels: frame t, pixel x = (r, g, b).
        byte[] rgb = [255, 0, 51, 0, 255, 102, 10, 20, 30, 40, 50, 60];
        float[] tensor = ClipTensor.ToArray(Clip(rgb, 2, 1, 2));
        // [C=3, T=2, H=1, W=2]
        float[] expected = [255, 0, 10, 40, 0, 255, 20, 50, 51, 102, 30, 60];
        Assert.Equal(expected.Length, tensor.Length);
        for (int i = 0; i < expected.Length; i++)
        {
            Assert.Equal(expected[i] / 255f, tensor[i], 6);
        }
    }

    [Fact]
    public void ToArray_MeanStd_Normalizes()
    {
        var norm = new Normalization([0.5f, 0.25f, 0f], [0.5f, 0.25f, 2f]);
        float[] tensor = ClipTensor.ToArray(Clip([255, 255, 255], 1, 1, 1), norm);
        Assert.Equal(1f, tensor[0], 5);
        Assert.Equal(3f, tensor[1], 5);
        Assert.Equal(0.5f, tensor[2], 5);
    }

    [Fact]
    public void Batch_StacksClipsOnLeadingAxis()
    {
        var a = Clip([0, 0, 0], 1, 1, 1);
        var b = Clip([255, 255, 255], 1, 1, 1);
        Assert.Equal([0f, 0f, 0f, 1f, 1f, 1f], ClipTensor.Batch([a, b]));
    }

    [Fact]
    public void Batch_MixedShapes_Throws()
    {
        Assert.Throws<ArgumentException>(() => ClipTensor.Batch([Clip(new byte[3], 1, 1, 1), Clip(new byte[6], 2, 1, 1)]));
    }
}
