using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;

namespace CvrlServe.Api.Resources;

/// <summary>Placeholder seam for the timeline (segments and thumbnails), filled by the Timeline folder.</summary>
internal static class Timelines
{
    public static Task<IReadOnlyList<SegmentResponse>> BuildAsync(VideoReader reader, VideoScores scores, int thumbnailSize, CancellationToken cancellationToken) =>
        throw new NotImplementedException();
}
