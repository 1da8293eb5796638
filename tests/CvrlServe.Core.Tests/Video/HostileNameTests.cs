using CvrlServe.Core.Video;

namespace CvrlServe.Core.Tests.Video;

/// <summary>
/// File names that break a command line built by string concatenation: quotes, backslashes, newlines, a
/// leading dash, and names that spell ffmpeg options. Each is an ordinary video and must read as one; a
/// name crafted to make ffmpeg read a neighbouring concat list must never reach the list's target.
/// </summary>
[Collection(IsolatedTests.Name)]
public sealed class HostileNameTests : IDisposable
{
    private const int Frames = 10;
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-hostile-").FullName;
    private readonly string _outside = Directory.CreateTempSubdirectory("cvrl-outside-").FullName;
    private readonly string _video;
    private readonly VideoReader _reader = new();

    public HostileNameTests()
    {
        // The real video: 64×48 grey index frames. The concat list's target: 80×40 in a saturated colour no index frame has.
        _video = Path.Combine(_outside, "index.mp4");
        FfTools.Ffmpeg("-f", "lavfi", "-i", "nullsrc=s=64x48:r=25,geq=lum='16+N*7':cb=128:cr=128,format=yuv420p",
            "-frames:v", $"{Frames}", "-c:v", "libx264", "-crf", "8", "-pix_fmt", "yuv420p", _video);
        FfTools.Ffmpeg("-f", "lavfi", "-i", "color=c=0xC83264:s=80x40:r=25", "-frames:v", $"{Frames}", "-c:v", "libx264", "-crf", "8",
            "-pix_fmt", "yuv420p", Path.Combine(_outside, "target.mp4"));
    }

    public void Dispose()
    {
        _reader.Dispose();
        Directory.Delete(_folder, recursive: true);
        Directory.Delete(_outside, recursive: true);
    }

    [Theory]
    [InlineData("quote\"inside.mp4")]
    [InlineData("back\\slash.mp4")]
    [InlineData("trailing-backslash\\")]
    [InlineData("two-trailing-backslashes\\\\")]
    [InlineData("quote-then-backslash\\\".mp4")]
    [InlineData("new\nline.mp4")]
    [InlineData("-leading-dash.mp4")]
    [InlineData("-")]
    [InlineData("L\" -safe 0 -print_filename ")]
    [InlineData("-i x.mp4")]
    [InlineData("$(touch pwned) `id` ; | & > <.mp4")]
    [InlineData("'single' quotes.mp4")]
    [InlineData("pipe:0")]
    [InlineData("file:other.mp4")]
    public async Task HostileName_ProbesDecodesAndEmbedsAsTheVideoItIs(string name)
    {
        string path = Path.Combine(_folder, name);
        File.Copy(_video, path);

        var media = await _reader.GetMediaInfoAsync(path);
        Assert.Equal((64, 48, Frames), (media.Width, media.Height, (int)media.FrameCount));
        var plan = SamplingPlan.Evaluation(media.Grid(), new ClipSpec(4, 2), 1);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);
        Assert.Equal(plan.Clips[0].Frames, FrameIndices(decoded.Views[0]));

        await using var encoder = await TinyEncoder.LoadAsync();
        TinyEncoder.AssertUsable(await encoder.EmbedAsync(_reader, path));
        Assert.False(File.Exists(Path.Combine(_folder, "pwned")));
    }

    [Theory]
    [InlineData("L\" -safe 0 -print_filename ", "L")]
    [InlineData("L\" -f concat -safe 0 -i \"L", "L")]
    [InlineData("x.mp4\" -f concat -safe 0 -i \"L", "L")]
    [InlineData("L\\\" -safe 0 -print_filename ", "L\\")]
    public async Task NameSpellingConcatOptions_NeverReadsTheNeighbouringList(string name, string listName)
    {
        // The list points outside the folder: ffmpeg's concat demuxer only follows it with -safe 0.
        File.WriteAllText(Path.Combine(_folder, listName), $"ffconcat version 1.0\nfile '{Path.Combine(_outside, "target.mp4")}'\n");
        string path = Path.Combine(_folder, name);
        File.Copy(_video, path);

        var media = await _reader.GetMediaInfoAsync(path);
        Assert.True((media.Width, media.Height) == (64, 48),
            $"the probe reports {media.Width}×{media.Height}, {media.FrameCount} frames ({media.ContainerFormat}): it read the concat list's 80×40 target, not the video");
        var grid = media.Grid();
        var plan = new SamplingPlan(grid, [new ClipPlan(Enumerable.Range(0, Math.Min(Frames, grid.Count)).ToArray())]);
        var decoded = await _reader.DecodeAsync(media, plan, FrameGeometry.FullFrame);

        // Every decoded frame is the real video's grey index frame, never the target's colour (R 200, G 50, B 100).
        var view = decoded.Views[0];
        for (int t = 0; t < view.Frames.Count; t++)
        {
            var frame = view.Frame(t);
            int centre = (24 * 64 + 32) * 3;
            Assert.True(Math.Abs(frame[centre] - frame[centre + 1]) <= 6 && Math.Abs(frame[centre] - frame[centre + 2]) <= 6,
                $"frame {t} is not grey: rgb({frame[centre]}, {frame[centre + 1]}, {frame[centre + 2]}); the concat list's target was read");
        }

        Assert.Equal((64, 48, Frames), (media.Width, media.Height, (int)media.FrameCount));
        Assert.Equal(Enumerable.Range(0, Frames), FrameIndices(view));
        await using var encoder = await TinyEncoder.LoadAsync();
        TinyEncoder.AssertUsable(await encoder.EmbedAsync(_reader, path));
    }

    private static int[] FrameIndices(DecodedClip view) =>
        Enumerable.Range(0, view.Frames.Count).Select(t => TestVideos.FrameIndexOf(view.Frame(t)[(24 * view.Width + 32) * 3])).ToArray();
}
