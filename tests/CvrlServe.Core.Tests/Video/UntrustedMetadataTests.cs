using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

/// <summary>ffprobe's numbers come from the upload: lies are caught by cross-checks, never trusted into a crash.</summary>
public class UntrustedMetadataTests
{
    private static string Json(string nbFrames = "\"30\"", string duration = "\"1.200000\"", string avg = "25/1", string r = "25/1", string width = "64") => $$"""
        {"streams": [{"index": 0, "codec_name": "h264", "pix_fmt": "yuv420p", "width": {{width}}, "height": 48,
          "r_frame_rate": "{{r}}", "avg_frame_rate": "{{avg}}", "start_time": "0.000000", "duration": {{duration}},
          "nb_frames": {{nbFrames}}, "disposition": {"attached_pic": 0} } ],
         "format": {"format_name": "mov,mp4,m4a,3gp,3g2,mj2", "start_time": "0.000000", "duration": {{duration}} } }
        """;

    [Theory]
    [InlineData("\"4294967280\"")]  // stts sample count overflowed: the file
    [InlineData("\"2000000000\"")]
    [InlineData("\"9223372036854775807\"")]
    [InlineData("\"-5\"")]
    [InlineData("\"N/A\"")]
    public void Parse_FrameCountThatDisagreesWithDurationTimesRate_IsNotBelieved(string nbFrames)
    {
        var media = MediaInfoParser.Parse(Json(nbFrames), "a.mp4", 1000);

        Assert.Equal(30, media.FrameCount); // 1.2 s × 25 fps
        Assert.Equal(FrameCountSource.EstimatedFromDuration, media.FrameCountSource);
        var grid = media.Grid();
        Assert.Equal(30, grid.Count);
        var plan = SamplingPlan.Evaluation(grid, new ClipSpec(16, 2), 10);
        Assert.All(plan.Clips.SelectMany(c => c.Frames), f => Assert.InRange(f, 0, 29));
    }

    [Fact]
    public void Parse_StatedCountWithinTwoFramesOfTheEstimate_IsExact()
    {
        var media = MediaInfoParser.Parse(Json("\"31\""), "a.mp4", 1000);
        Assert.Equal((31, FrameCountSource.Container), (media.FrameCount, media.FrameCountSource));
    }

    [Theory]
    [InlineData("\"1e300\"")]
    [InlineData("\"-1.5\"")]
    [InlineData("\"NaN\"")]
    [InlineData("\"99999999999999999999999\"")]
    public void Parse_AbsurdDuration_TreatedAsUnknownAndBoundedByTheCount(string duration)
    {
        var media = MediaInfoParser.Parse(Json(duration: duration), "a.mp4", 1000);
        Assert.Equal(30, media.FrameCount);
        Assert.Equal(TimeSpan.FromSeconds(1.2), media.Duration); // 30 frames / 25 fps: the duration limit still applies
    }

    [Fact]
    public void Parse_HugeCountAndNoDuration_DurationFromTheCountSoTheLimitRefusesIt()
    {
        var media = MediaInfoParser.Parse(Json("\"2000000000\"", duration: "\"N/A\""), "a.mp4", 1000);
        Assert.Equal(TimeSpan.FromSeconds(MediaInfoParser.MaxFrames / 25.0), media.Duration);
        var error = Assert.Throws<LimitExceededException>(() => new VideoLimits().CheckMedia(media));
        Assert.Equal(Limit.Duration, error.Limit);
    }

    [Theory]
    [InlineData("0/0", "25/1", 25)]           // Theora in Ogg: no average rate
    [InlineData("25/0", "30000/1001", 29.97)] // division by zero
    [InlineData("1/0", "0/0", 25)]            // neither: stated count over duration (30 / 1.2 s)
    [InlineData("x/y", "25", 25)]
    public void Parse_BrokenRates_FallBackWithoutThrowing(string avg, string r, double expected)
    {
        var media = MediaInfoParser.Parse(Json(avg: avg, r: r), "a.mp4", 1000);
        Assert.Equal(expected, media.FrameRate, 2);
    }

    [Theory]
    [InlineData("0")]
    [InlineData("-64")]
    [InlineData("99999999999")]
    [InlineData("\"wide\"")]
    public void Parse_BadWidth_NoVideo(string width)
    {
        Assert.False(MediaInfoParser.Parse(Json(width: width), "a.mp4", 1000).HasVideo);
    }

    [Theory]
    [InlineData("")]
    [InlineData("not json")]
    [InlineData("[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]")]
    public void Parse_NotJson_UnsupportedWithoutThePathInTheMessage(string json)
    {
        var error = Assert.Throws<UnsupportedMediaException>(() => MediaInfoParser.Parse(json, "/srv/uploads/secret-name.mp4", 10));
        Assert.DoesNotContain("secret-name", error.Message, StringComparison.Ordinal);
        Assert.Contains("secret-name", error.Detail, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(0)]
    public void Tighten_NonPositiveTimeout_Refused(int milliseconds)
    {
        var error = Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { ProcessTimeout = TimeSpan.FromMilliseconds(milliseconds) }));
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.Contains("processTimeout", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Tighten_NegativeSecondsOrInfinite_Refused()
    {
        Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { ProcessTimeout = TimeSpan.FromSeconds(-5) }));
        Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { ProcessTimeout = Timeout.InfiniteTimeSpan }));
        Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { MaxFileBytes = 0 }));
        Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { MaxDuration = TimeSpan.FromSeconds(-1) }));
        Assert.Throws<InvalidRequestException>(() => new VideoLimits().Tighten(new VideoLimits { MaxAspectRatio = double.NaN }));
    }
}
