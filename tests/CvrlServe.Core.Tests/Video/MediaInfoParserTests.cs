using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class MediaInfoParserTests
{
    private static string Captured(string name) => File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "Video", "Captured", name));

    [Fact]
    public void Parse_RotatedMp4_SwapsDisplaySizeAndReadsExactCount()
    {
        var media = MediaInfoParser.Parse((Captured("rotated90-h264.mp4.json")), "rot.mp4", 2425);
        Assert.True(media.HasVideo);
        Assert.Equal(90, media.Rotation);
        Assert.Equal((48, 64), (media.Width, media.Height));
        Assert.Equal(30, media.FrameCount);
        Assert.Equal(FrameCountSource.Container, media.FrameCountSource);
        Assert.Equal(25, media.FrameRate);
        Assert.Equal("h264", media.Codec);
        Assert.Equal("yuv420p", media.PixelFormat);
    }

    [Fact]
    public void Parse_Mkv_EstimatesCountFromContainerDuration()
    {
        var media = MediaInfoParser.Parse((Captured("h264.mkv.json")), "a.mkv", 2000);
        Assert.Equal(TimeSpan.FromSeconds(1.2), media.Duration);
        Assert.Equal(30, media.FrameCount);
        Assert.Equal(FrameCountSource.EstimatedFromDuration, media.FrameCountSource);
        Assert.Contains("matroska", media.ContainerFormat, StringComparison.Ordinal);
    }

    [Fact]
    public void Parse_AbsurdAverageRate_FallsBackToBaseRate()
    {
        string json = Captured("rotated90-h264.mp4.json").Replace("\"avg_frame_rate\": \"25/1\"", "\"avg_frame_rate\": \"187/1\"", StringComparison.Ordinal);
        var media = MediaInfoParser.Parse((json), "rot.mp4", 2425);
        Assert.Equal(25, media.FrameRate);
    }

    [Theory]
    [InlineData(29.97, 30, 29.97)]   // average below the base rate: trusted
    [InlineData(187, 30, 30)]        // average above the base rate: not
    [InlineData(0, 25, 25)]          // no average
    [InlineData(0, 90000, 24)]       // neither sane: frames / duration (240 / 10 s)
    [InlineData(0, 0, 24)]
    public void TrustedFrameRate_PicksASaneRate(double average, double nominal, double expected)
    {
        Assert.Equal(expected, MediaInfoParser.TrustedFrameRate(average, nominal, 240, TimeSpan.FromSeconds(10)), 3);
    }

    [Fact]
    public void ClassifyProbeFailure_ContainerSignature_DecidesCorruptOrUnsupported()
    {
        string[] stderr = ["[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55d5] moov atom not found", "x.mp4: Invalid data found when processing input"];
        byte[] mp4Head = [0, 0, 0, 0x20, .. "ftypisom"u8];
        Assert.IsType<CorruptVideoException>(FfmpegErrors.ClassifyProbeFailure("x.mp4", mp4Head, stderr));
        Assert.IsType<UnsupportedMediaException>(FfmpegErrors.ClassifyProbeFailure("x.mp4", "This is text"u8, stderr));
    }

    [Fact]
    public void ClassifyProbeFailure_NotOnWhitelist_IsUnsupported()
    {
        string[] stderr = ["[hls @ 0x557f] Format not on whitelist 'mov,mp4'", "x.mp4: Invalid argument"];
        var error = Assert.IsType<UnsupportedMediaException>(FfmpegErrors.ClassifyProbeFailure("x.mp4", [], stderr));
        Assert.Equal(stderr, error.StderrTail);
    }
}
