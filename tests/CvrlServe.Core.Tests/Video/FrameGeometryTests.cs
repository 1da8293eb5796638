using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class FrameGeometryTests
{
    [Theory]
    [InlineData(1280, 720, 256, 455, 256)]
    [InlineData(720, 1280, 256, 256, 455)]
    [InlineData(321, 241, 128, 170, 128)]
    [InlineData(64, 64, 32, 32, 32)]
    public void ResizedSize_ShortSideResize_KeepsAspect(int w, int h, int side, int ew, int eh)
    {
        Assert.Equal((ew, eh), new FrameGeometry(side).ResizedSize(w, h));
    }

    [Fact]
    public void Crops_ThreeAlongLandscape_StartCentreEnd()
    {
        var crops = FrameGeometry.ThreeCrops(256, 256).Crops(455, 256);
        Assert.Equal([new CropBox(0, 0, 256, 256), new CropBox(99, 0, 256, 256), new CropBox(199, 0, 256, 256)], crops);
    }

    [Fact]
    public void Crops_ThreeAlongPortrait_RunDownTheFrame()
    {
        var crops = FrameGeometry.ThreeCrops(100, 80).Crops(100, 178);
        Assert.Equal([new CropBox(10, 0, 80, 80), new CropBox(10, 49, 80, 80), new CropBox(10, 98, 80, 80)], crops);
    }

    [Fact]
    public void Crops_TooLarge_Throws()
    {
        Assert.Throws<InvalidRequestException>(() => FrameGeometry.CenterCrop(100, 120).Crops(177, 100));
    }
}
