using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

public class DecodeCommandTests
{
    private static MediaInfo Probe(int w = 1280, int h = 720, double fps = 30, long frames = 1800) =>
        new("/videos/a.mp4", 1000, "mov,mp4,m4a,3gp,3g2,mj2", true, "h264", "yuv420p", w, h, 0, TimeSpan.Zero, TimeSpan.Zero,
            TimeSpan.FromSeconds(frames / fps), fps, frames, FrameCountSource.Container, false);

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
        Assert.DoesNotContain("-ss", command.Inputs[0].Options);
        // The second clip starts at frame 196 (int(linspace(0, 1800 − 32, 10))[1]); its input seeks 0.1 s (3 frames at 30 fps) before it.
        Assert.Equal(["-ss", "6.433333"], command.Inputs[1].Options.Take(2));
        Assert.Contains("concat=n=10:v=1:a=0[out]", command.FilterGraph, StringComparison.Ordinal);
        Assert.All(command.Inputs, i => Assert.Equal(["-protocol_whitelist", "file", "-format_whitelist"], i.Options.SkipWhile(o => o != "-protocol_whitelist").Take(3)));
        Assert.All(command.Inputs, i => Assert.Equal(["-max_pixels", $"{3840 * 2160}"], i.Options.SkipWhile(o => o != "-max_pixels").Take(2)));
    }

    [Fact]
    public void Build_WithoutSeek_OneInputFromTheStart()
    {
        var media = Probe();
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(16, 2), 10);
        var command = DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: false);

        var input = Assert.Single(command.Inputs);
        Assert.DoesNotContain("-ss", input.Options);
        Assert.DoesNotContain("concat", command.FilterGraph, StringComparison.Ordinal);
        Assert.Equal((1280, 720), (command.Width, command.Height));
    }

    [Theory]
    [InlineData("/up/L\" -safe 0 -print_filename ")]
    [InlineData("/up/-i x.mp4")]
    [InlineData("/up/ends-with\\")]
    [InlineData("/up/new\nline.mp4")]
    [InlineData("/up/concat:a.mp4|b.mp4")]
    public void Arguments_HostilePath_IsOneArgumentNamedAsAFile(string path)
    {
        var media = Probe() with { Path = path };
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 1), 1);
        var arguments = DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: true).Arguments();

        // The path is exactly one argument, right after -i, behind the file: protocol (never an option,
        // a concat list or another protocol), and nothing else carries any part of it.
        int i = arguments.ToList().IndexOf("-i");
        Assert.Equal("file:" + path, arguments[i + 1]);
        Assert.Single(arguments, a => a.Contains("up/", StringComparison.Ordinal));
    }

    [Fact]
    public void Build_CenterCrop_CropsInFfmpegSoOnlyTheCropIsReturned()
    {
        var media = Probe(w: 1024, h: 16);
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 1), 1);
        var command = DecodeCommand.Build(media, plan, FrameGeometry.CenterCrop(128, 112), VideoReaderOptions.DefaultAllowedFormats, seek: true);

        // Resized to 8192×128, then the centred 112² crop: (8192 − 112)/2 = 4040, (128 − 112)/2 = 8.
        Assert.Contains("scale=8192:128:flags=bilinear,format=rgb24,crop=112:112:4040:8:exact=1", command.FilterGraph, StringComparison.Ordinal);
        Assert.Equal((112, 112), (command.Width, command.Height));
        Assert.Equal(8L * 112 * 112 * 3, command.ExpectedBytes);
    }

    [Fact]
    public void Build_ThreeCrops_StacksTheThreeCropsSideBySide()
    {
        var media = Probe(w: 320, h: 240);
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(8, 1), 1);
        var command = DecodeCommand.Build(media, plan, FrameGeometry.ThreeCrops(128, 112), VideoReaderOptions.DefaultAllowedFormats, seek: true);

        // 320×240 → 171×128; crops at x = 0, (171 − 112)/2 = 29, 171 − 112 = 59, all at y = 8.
        Assert.Contains("crop=112:112:0:8:exact=1", command.FilterGraph, StringComparison.Ordinal);
        Assert.Contains("crop=112:112:29:8:exact=1", command.FilterGraph, StringComparison.Ordinal);
        Assert.Contains("crop=112:112:59:8:exact=1", command.FilterGraph, StringComparison.Ordinal);
        Assert.Equal((3, 336, 112), (command.Tiles, command.Width, command.Height));
    }

    [Fact]
    public void SelectExpression_ArithmeticRun_UsesBetweenAndMod()
    {
        var grid = new FrameGrid(25, 100, TimeSpan.FromSeconds(1.48));
        Assert.Equal("between(round(t*25),10,40)*not(mod(round(t*25)-10,2))",
            DecodeCommand.SelectExpression([.. Enumerable.Range(0, 16).Select(i => 10 + 2 * i)], grid));
        Assert.Equal("between(round(t*25),1,2)+eq(round(t*25),5)",
            DecodeCommand.SelectExpression([1, 2, 5], new FrameGrid(25, 100, TimeSpan.Zero)));
    }

    [Fact]
    public void SelectExpression_ManyOverlappingClips_GrowsWithClipsNotFrames()
    {
        // 64 clips of 512 frames, stride 2, 1100 frames apart: one run (as a plan reading through would make) that is not arithmetic as a whole.
        var grid = new FrameGrid(25, 100_000, TimeSpan.Zero);
        int[] run = Enumerable.Range(0, 64).SelectMany(c => Enumerable.Range(0, 512).Select(t => (c * 1100) + (2 * t))).Distinct().Order().ToArray();
        string expression = DecodeCommand.SelectExpression(run, grid);
        Assert.InRange(expression.Length, 1, 64 * 100);
    }

    [Fact]
    public void Build_FrameOutsideGrid_Throws()
    {
        var media = Probe(frames: 10);
        var plan = new SamplingPlan(media.Grid(), [new ClipPlan([3, 10])]);
        Assert.Throws<InvalidRequestException>(() => DecodeCommand.Build(media, plan, FrameGeometry.FullFrame, VideoReaderOptions.DefaultAllowedFormats, seek: true));
    }
}
