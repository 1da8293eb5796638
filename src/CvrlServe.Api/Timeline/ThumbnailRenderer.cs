using CvrlServe.Core.Video;
using SixLabors.ImageSharp;
using SixLabors.ImageSharp.Formats.Jpeg;
using SixLabors.ImageSharp.PixelFormats;

namespace CvrlServe.Api.Timeline;

/// <summary>A small encoded picture of one timeline segment.</summary>
/// <param name="Width">Pixels across.</param>
/// <param name="Height">Pixels down.</param>
/// <param name="MediaType">The encoding's media type: <see cref="ThumbnailRenderer.JpegMediaType"/>.</param>
/// <param name="Bytes">The encoded image.</param>
public sealed record Thumbnail(int Width, int Height, string MediaType, byte[] Bytes);

/// <summary>
/// Renders one keyframe thumbnail per timeline segment with the project's <see cref="VideoReader"/>: every
/// frame in one decode, held in the reader's decoded-memory budget, then encoded as JPEG. ImageSharp only
/// encodes pixels ffmpeg decoded for us; it never reads a file or bytes a client sent.
/// </summary>
public static class ThumbnailRenderer
{
    /// <summary>Media type of every thumbnail.</summary>
    public const string JpegMediaType = "image/jpeg";

    /// <summary>JPEG quality of every thumbnail.</summary>
    public const int JpegQuality = 80;

    /// <summary>Thumbnails rendered at most, unless the caller says otherwise.</summary>
    public const int DefaultMaxSegments = 32;

    /// <summary>Largest long side accepted, in pixels.</summary>
    public const int MaxLongSide = 1024;

    /// <summary>
    /// One JPEG thumbnail for each of the first <paramref name="maxSegments"/> segments, in segment order:
    /// thumbnail i belongs to segment i, and segments past the cap get none (the list is shorter). Each shows
    /// the frame on screen at the segment's midpoint (the slot of the video's own frame grid that holds it,
    /// clamped to the grid), scaled with the display aspect kept so its long side is
    /// <paramref name="longSide"/> pixels (within a pixel when no whole short side gives exactly that).
    /// All frames are decoded by one <see cref="VideoReader.DecodeAsync"/> call under one reservation of
    /// <see cref="VideoReader.EstimateBytes"/> bytes, held until every frame is encoded and released
    /// whatever happens. No segments (or a cap of 0) return an empty list without decoding.
    /// Throws <see cref="ArgumentNullException"/> for a null argument; <see cref="ArgumentOutOfRangeException"/>
    /// when <paramref name="longSide"/> is outside [1, <see cref="MaxLongSide"/>] or
    /// <paramref name="maxSegments"/> is negative; <see cref="ArgumentException"/> for a null segment or one
    /// with times that are not finite; and whatever the reader throws (limits, memory budget, corrupt or
    /// audio-only media, deadline, cancellation).
    /// </summary>
    public static async Task<IReadOnlyList<Thumbnail>> RenderAsync(
        VideoReader reader,
        MediaInfo media,
        IReadOnlyList<TimelineSegment> segments,
        int longSide,
        VideoLimits? limits = null,
        int maxSegments = DefaultMaxSegments,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(reader);
        ArgumentNullException.ThrowIfNull(media);
        ArgumentNullException.ThrowIfNull(segments);
        ArgumentOutOfRangeException.ThrowIfLessThan(longSide, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(longSide, MaxLongSide);
        ArgumentOutOfRangeException.ThrowIfNegative(maxSegments);
        var chosen = segments.Take(maxSegments).ToArray();
        foreach (var segment in chosen)
        {
            if (segment is null || !double.IsFinite(segment.Start) || !double.IsFinite(segment.End))
            {
                throw new ArgumentException("Every segment needs finite start and end times.", nameof(segments));
            }
        }

        if (chosen.Length == 0)
        {
            return [];
        }

        var grid = media.Grid();
        var plan = new SamplingPlan(grid, chosen.Select(s => new ClipPlan([KeyFrame(grid, s)])).ToArray());
        var geometry = new FrameGeometry(ShortSideFor(media.Width, media.Height, longSide));
        using var reservation = await reader.ReserveAsync(
            reader.EstimateBytes(media, plan, geometry, withFloatTensors: false, limits), cancellationToken);
        var decoded = await reader.DecodeAsync(media, plan, geometry, limits, reservation, cancellationToken);
        var encoder = new JpegEncoder { Quality = JpegQuality };
        var thumbnails = new Thumbnail[decoded.Views.Count];
        for (int i = 0; i < thumbnails.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var view = decoded.Views[i];
            using var image = Image.LoadPixelData<Rgb24>(view.Frame(0), view.Width, view.Height);
            using var jpeg = new MemoryStream();
            image.SaveAsJpeg(jpeg, encoder);
            thumbnails[i] = new Thumbnail(view.Width, view.Height, JpegMediaType, jpeg.ToArray());
        }

        return thumbnails;
    }

    /// <summary>The grid slot on screen at the segment's midpoint (slot i spans [i/R, (i+1)/R)), clamped to the grid.</summary>
    internal static int KeyFrame(FrameGrid grid, TimelineSegment segment)
    {
        double middle = (segment.Start + segment.End) / 2;
        double slot = Math.Floor(middle * grid.Rate);
        return (int)Math.Clamp(slot, 0, grid.Count - 1);
    }

    /// <summary>
    /// The short side that makes <see cref="FrameGeometry.ResizedSize"/> give a long side of
    /// <paramref name="longSide"/> for a <paramref name="width"/>×<paramref name="height"/> frame: the
    /// rounded proportion, or a neighbour of it when that lands nearer (rounding twice can miss by one).
    /// </summary>
    internal static int ShortSideFor(int width, int height, int longSide)
    {
        int longer = Math.Max(width, height);
        int shorter = Math.Min(width, height);
        if (shorter < 1)
        {
            throw new ArgumentException($"A {width}×{height} frame has no picture to scale.", nameof(width));
        }

        int guess = Math.Max(1, (int)Math.Round((double)longSide * shorter / longer));
        int best = guess;
        int bestMiss = int.MaxValue;
        foreach (int candidate in new[] { guess, guess - 1, guess + 1 })
        {
            if (candidate < 1)
            {
                continue;
            }

            var (w, h) = new FrameGeometry(candidate).ResizedSize(width, height);
            int miss = Math.Abs(Math.Max(w, h) - longSide);
            if (miss < bestMiss)
            {
                best = candidate;
                bestMiss = miss;
            }
        }

        return best;
    }
}
