using CvrlServe.Api.Timeline;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Resources;

/// <summary>A classified video's timeline as the API returns it: segments, each with its thumbnail when asked for.</summary>
internal static class Timelines
{
    /// <summary>Segments of <paramref name="scores"/>' clips; with <paramref name="thumbnailSize"/> &gt; 0 a JPEG keyframe each (the first 32).</summary>
    public static async Task<IReadOnlyList<SegmentResponse>> BuildAsync(VideoReader reader, VideoScores scores, int thumbnailSize, CancellationToken cancellationToken)
    {
        var segments = TimelineBuilder.Segments(scores.Clips, scores.Classes);
        var thumbnails = thumbnailSize > 0
            ? await ThumbnailRenderer.RenderAsync(reader, scores.Media, segments, thumbnailSize, cancellationToken: cancellationToken)
            : [];
        return segments.Select((s, i) => new SegmentResponse(s.Label, s.Start, s.End, s.Confidence,
            i < thumbnails.Count ? new ThumbnailResponse(thumbnails[i].MediaType, thumbnails[i].Width, thumbnails[i].Height, Convert.ToBase64String(thumbnails[i].Bytes)) : null)).ToArray();
    }
}
