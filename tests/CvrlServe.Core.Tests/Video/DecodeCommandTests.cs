using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class DecodeCommandTests
{
    private static MediaInfo Probe(int w = 1280, int h = 720, double fps = 30, long frames = 1800) =>
        new("/videos/a.mp4", 1000, "mov,mp4,m4a,3gp,3g2,mj2", true, "h264", "yuv420p", w, h, 0, TimeSpan.Zero, TimeSpan.Zero,
            TimeSpan.FromSeconds(frames / fps), fps, frames, FrameCountSource.Container, false, false);

    [Fact]
    public void Segments_SplitsWhereGapExceedsLimit()
    {
        var segments = DecodeCommand.Segments([0, 2, 4, 100, 102, 300], maxGap: 60);
        Assert.Equal(3, segments.Count);
        Assert.Equal([100, 102], segments[1]);
    }

    [Fact]
    public void Build_TenEvaluationClips_OneInputPerDistantClipInOneCommand()
    {
        var media = Probe();
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(16, 2), 10);
        var command = DecodeCommand.Build(media, plan, new FrameGeometry(128), VideoReaderOptions.DefaultAllowedFormats, seek: true);

        Assert.Equal(10, command.Inputs.Count);
        Assert.Equal(160, command.Frames);
        Assert.Equal((228, 128), (command.Width, command.Height));
        Assert.DoesNotContain("-ss", command.Inputs[0].Options, StringComparison.Ordinal);
        Assert.StartsWith("-ss 6.516667 ", command.Inputs[1].Options, StringComparison.Ordinal); // (196 − 0.5)/30
        Assert.Contains("concat=n=10:v=1:a=0[out]", command.OutputOptions, StringComparison.Ordinal);
        Assert.All(command.Inputs, i => Assert.Contains("-protocol_whitelist file,pipe -format_whitelist mov,mp4,", i.Options, StringComparison.Ordinal));
    }

    [Fact]
    public void Build_WithoutSeek_OneInputFromTheStart()
    {
        var media = Probe();
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(16, 2), 10);
        var command = DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: false);

        var input = Assert.Single(command.Inputs);
        Assert.DoesNotContain("-ss", input.Options, StringComparison.Ordinal);
        Assert.DoesNotContain("concat", command.OutputOptions, StringComparison.Ordinal);
        Assert.Equal((1280, 720), (command.Width, command.Height));
    }

    [Fact]
    public void SelectExpression_ArithmeticRun_UsesBetweenAndMod()
    {
        var grid = new FrameGrid(25, 100, TimeSpan.FromSeconds(1.48));
        Assert.Equal("between(round((t-1.48)*25),10,40)*not(mod(round((t-1.48)*25)-10,2))",
            DecodeCommand.SelectExpression([.. Enumerable.Range(0, 16).Select(i => 10 + 2 * i)], grid));
        Assert.Equal("eq(round((t-0)*25),1)+eq(round((t-0)*25),2)+eq(round((t-0)*25),5)",
            DecodeCommand.SelectExpression([1, 2, 5], new FrameGrid(25, 100, TimeSpan.Zero)));
    }

    [Fact]
    public void Build_FrameOutsideGrid_Throws()
    {
        var media = Probe(frames: 10);
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan([3, 10])]);
        Assert.Throws<ArgumentException>(() => DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: true));
    }
}
