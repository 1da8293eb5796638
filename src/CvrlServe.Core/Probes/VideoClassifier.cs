using System.Diagnostics;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Probes;

/// <summary>One clip's class probabilities (its crops averaged) and where the clip lies in the video.</summary>
public sealed record ClipScores(int Clip, TimeSpan Start, TimeSpan End, float[] Probabilities);

/// <summary>A video's class probabilities (the average over every view, as CVRL evaluates) and each clip's.</summary>
public sealed record VideoScores(string Model, string ModelId, IReadOnlyList<string> Classes, float[] Probabilities, IReadOnlyList<ClipScores> Clips, MediaInfo Media, StageTimings Timings);

/// <summary>
/// Classifies videos with a probe: the views of the space the probe was trained in
/// (<see cref="ProbeFeatures.SpaceOf"/> its recorded view), each embedded and scored, probabilities averaged
/// over views. The same computation as <c>cvrl probe eval</c>, so served labels match the evaluation.
/// </summary>
public static class VideoClassifier
{
    public static async Task<VideoScores> ClassifyAsync(VideoEmbedder embedder, EncoderModel model, StoredProbe probe, string path, VideoLimits? limits = null, int? clips = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(embedder);
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(probe);
        var space = ProbeFeatures.SpaceOf(model.Manifest, probe.Metadata.View);
        var total = Stopwatch.StartNew();
        var media = await embedder.Reader.GetMediaInfoAsync(path, limits, cancellationToken);
        var probeTime = total.Elapsed;
        var clip = space.Clip();
        var plan = SamplingPlan.Evaluation(media.Grid(space.View.TargetFps), clip, clips ?? space.View.Clips);
        var views = await embedder.EmbedViewsAsync(model, media, plan, space.Geometry(), limits, cancellationToken);
        var scored = views.Embeddings.Select(probe.Probe.Predict).ToArray();
        int crops = scored.Length / plan.Clips.Count;
        var perClip = new ClipScores[plan.Clips.Count];
        for (int c = 0; c < perClip.Length; c++)
        {
            var first = views.Video.Views[c * crops];
            perClip[c] = new ClipScores(c, first.Start, first.End, ProbeEvaluation.AverageViews(scored.Skip(c * crops).Take(crops).ToArray()));
        }

        return new VideoScores(model.Name, space.ModelId, probe.Probe.Classes, ProbeEvaluation.AverageViews(scored), perClip, media,
            new StageTimings(probeTime, views.Decode, views.Queued, views.Inference, total.Elapsed));
    }
}
