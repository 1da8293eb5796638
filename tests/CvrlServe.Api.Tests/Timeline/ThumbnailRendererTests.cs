using CvrlServe.Api.Timeline;
using CvrlServe.Core;
using CvrlServe.Core.Video;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.PixelFormats;

namespace CvrlServe.Api.Tests.Timeline;

public sealed class ThumbnailRendererTests(TimelineVideos videos) : IClassFixture<TimelineVideos>
{
    private const int Size = 160;

    [Theory]
    [InlineData(false, 320, 240)]
    [InlineData(true, 240, 320)]
    public async Task RenderAsync_Segments_OneJpegEachAtTheLongSide(bool portrait, int width, int height)
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(portrait ? videos.Portrait : videos.Landscape);
        double duration = media.Duration.TotalSeconds;
        TimelineSegment[] segments = [Segment(0, duration / 3), Segment(duration / 3, duration * 2 / 3), Segment(duration * 2 / 3, duration)];

        var thumbnails = await ThumbnailRenderer.RenderAsync(reader, media, segments, Size);

        Assert.Equal(segments.Length, thumbnails.Count);
        foreach (var thumbnail in thumbnails)
        {
            Assert.Equal("image/jpeg", thumbnail.MediaType);
            Assert.Equal([0xFF, 0xD8], thumbnail.Bytes[..2]);
            Assert.Equal([0xFF, 0xD9], thumbnail.Bytes[^2..]);
            Assert.Equal(Size, Math.Max(thumbnail.Width, thumbnail.Height));
            // The aspect is kept to a pixel: the short side is what the display aspect makes of the long side.
            double shortSide = (double)Size * Math.Min(width, height) / Math.Max(width, height);
            Assert.InRange(Math.Min(thumbnail.Width, thumbnail.Height), shortSide - 1, shortSide + 1);
            Assert.Equal(portrait, thumbnail.Height > thumbnail.Width);
            using var image = Image.Load<Rgb24>(thumbnail.Bytes);
            Assert.Equal((thumbnail.Width, thumbnail.Height), (image.Width, image.Height));
        }

        // The frames were reserved in the decoded-memory budget, and are no longer.
        Assert.True(reader.MemoryBudget.PeakBytes >= (long)segments.Length * thumbnails[0].Width * thumbnails[0].Height * 3);
        Assert.Equal(0, reader.MemoryBudget.InUseBytes);
    }

    [Fact]
    public async Task RenderAsync_ColourChangesAtTwoSeconds_EachThumbnailShowsItsSegment()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.RedThenBlue);

        // Midpoints at 1 s (red) and 3 s (blue).
        var thumbnails = await ThumbnailRenderer.RenderAsync(reader, media, [Segment(0, 2), Segment(2, 4)], Size);

        Assert.Equal(2, thumbnails.Count);
        Assert.Equal((160, 90), (thumbnails[0].Width, thumbnails[0].Height));
        var (red, _, blue) = MeanColour(thumbnails[0].Bytes);
        Assert.True(red > 200 && blue < 50, $"the first thumbnail should be red, its mean is R {red:F0} B {blue:F0}");
        (red, _, blue) = MeanColour(thumbnails[1].Bytes);
        Assert.True(blue > 200 && red < 50, $"the second thumbnail should be blue, its mean is R {red:F0} B {blue:F0}");
        Assert.Equal(0, reader.MemoryBudget.InUseBytes);
    }

    [Fact]
    public async Task RenderAsync_MoreSegmentsThanTheCap_OnlyTheFirstGetThumbnails()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.RedThenBlue);

        var thumbnails = await ThumbnailRenderer.RenderAsync(reader, media, [Segment(2, 4), Segment(0, 1), Segment(1, 2)], Size, maxSegments: 2);

        // Thumbnail i belongs to segment i, whatever their times.
        Assert.Equal(2, thumbnails.Count);
        Assert.True(MeanColour(thumbnails[0].Bytes).Blue > 200);
        Assert.True(MeanColour(thumbnails[1].Bytes).Red > 200);
    }

    [Fact]
    public async Task RenderAsync_SegmentsPastTheEnd_UseTheLastFrame()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.RedThenBlue);

        var thumbnails = await ThumbnailRenderer.RenderAsync(reader, media, [Segment(10, 20)], Size);

        Assert.True(MeanColour(Assert.Single(thumbnails).Bytes).Blue > 200);
    }

    [Fact]
    public async Task RenderAsync_NoSegments_DecodesNothing()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.Landscape);

        Assert.Empty(await ThumbnailRenderer.RenderAsync(reader, media, [], Size));
        Assert.Empty(await ThumbnailRenderer.RenderAsync(reader, media, [Segment(0, 1)], Size, maxSegments: 0));
        Assert.Equal(0, reader.MemoryBudget.PeakBytes);
    }

    [Fact]
    public async Task RenderAsync_DecodeFails_ReservationReleased()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.Landscape);
        using var cancelled = new CancellationTokenSource();
        await cancelled.CancelAsync();

        // Room is free, so the reservation is granted; the decode then gives up waiting for an ffmpeg slot.
        await Assert.ThrowsAnyAsync<OperationCanceledException>(() =>
            ThumbnailRenderer.RenderAsync(reader, media, [Segment(0, 4)], Size, cancellationToken: cancelled.Token));

        Assert.True(reader.MemoryBudget.PeakBytes > 0);
        Assert.Equal(0, reader.MemoryBudget.InUseBytes);
    }

    [Fact]
    public async Task RenderAsync_OverTheDecodedBytesLimit_RefusedBeforeReserving()
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.Landscape);

        await Assert.ThrowsAsync<LimitExceededException>(() =>
            ThumbnailRenderer.RenderAsync(reader, media, [Segment(0, 4)], Size, new VideoLimits { MaxDecodedBytes = 1000 }));

        Assert.Equal(0, reader.MemoryBudget.PeakBytes);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(ThumbnailRenderer.MaxLongSide + 1)]
    public async Task RenderAsync_LongSideOutOfRange_Throws(int longSide)
    {
        using var reader = new VideoReader();
        var media = await reader.GetMediaInfoAsync(videos.Landscape);

        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => ThumbnailRenderer.RenderAsync(reader, media, [Segment(0, 1)], longSide));
    }

    [Theory]
    [InlineData(0.0, 2.0, 25)] // midpoint 1 s: slot 25 spans [1.00, 1.04)
    [InlineData(0.0, 0.05, 0)] // midpoint 0.025 s × 25 = 0.625: slot 0 is on screen (floor, not round)
    [InlineData(3.0, 3.1, 76)] // midpoint 3.05 s × 25 = 76.25
    [InlineData(10.0, 20.0, 99)] // past the end: the last of 100 slots
    public void KeyFrame_Midpoint_SlotOnScreen(double start, double end, int expected)
    {
        var grid = new FrameGrid(25, 100, TimeSpan.Zero);

        Assert.Equal(expected, ThumbnailRenderer.KeyFrame(grid, Segment(start, end)));
    }

    [Theory]
    [InlineData(320, 240, 160, 120)] // 4:3, exact
    [InlineData(240, 320, 160, 120)]
    [InlineData(1920, 1080, 160, 90)] // 16:9, exact
    [InlineData(199, 100, 160, 80)] // 80 gives 159 across, 81 gives 161: the rounded guess stays
    [InlineData(1000, 3, 160, 1)] // never below one pixel
    public void ShortSideFor_DisplaySize_ShortSideThatGivesTheLongSide(int width, int height, int longSide, int expected) =>
        Assert.Equal(expected, ThumbnailRenderer.ShortSideFor(width, height, longSide));

    private static TimelineSegment Segment(double start, double end) => new("label", start, end, 1.0, 0, 0);

    private static (double Red, double Green, double Blue) MeanColour(byte[] jpeg)
    {
        using var image = Image.Load<Rgb24>(jpeg);
        double r = 0, g = 0, b = 0;
        for (int y = 0; y < image.Height; y++)
        {
            for (int x = 0; x < image.Width; x++)
            {
                var pixel = image[x, y];
                r += pixel.R;
                g += pixel.G;
                b += pixel.B;
            }
        }

        double n = (double)image.Width * image.Height;
        return (r / n, g / n, b / n);
    }
}
