using CvrlServe.Core;
using CvrlServe.Core.Datasets;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Probes;
using CvrlServe.Core.Video;
using CvrlServe.Training.Plots;
using CvrlServe.Training.Trainers;

namespace CvrlServe.Training.Commands;

/// <summary><c>cvrl plot-curves</c> and <c>cvrl plot-embeddings</c>.</summary>
internal static class PlotCommands
{
    public static readonly IReadOnlySet<string> Flags = new HashSet<string> { "--cpu" };

    /// <summary>Loss and accuracy of one or more runs (their metrics.csv), overlaid in one figure.</summary>
    public static int Curves(CommandArgs args, TextWriter output)
    {
        var runs = args.All("--run");
        string png = args.Required("--out");
        string? title = args.Optional("--title");
        args.RejectUnknown();
        if (runs.Count == 0)
        {
            throw new UsageException("--run is required (repeat it to overlay runs).");
        }

        // A run is labelled by its folder's name, or by the path as given when two folders share a name.
        var names = runs.Select(r => Path.GetFileName(Path.TrimEndingDirectorySeparator(r))).ToArray();
        bool clash = names.Distinct(StringComparer.Ordinal).Count() < names.Length;
        var loaded = new List<(string Label, IReadOnlyList<StepMetrics> Steps)>();
        for (int i = 0; i < runs.Count; i++)
        {
            string csv = Directory.Exists(runs[i]) ? Path.Combine(runs[i], "metrics.csv")
                : File.Exists(runs[i]) ? runs[i]
                : throw new UsageException($"--run {runs[i]}: neither a run folder (holding metrics.csv) nor a metrics file.");
            var steps = TrainingLog.Read(csv);
            if (steps.Count == 0)
            {
                throw new InvalidDataException($"'{csv}' holds no steps.");
            }

            loaded.Add((clash ? runs[i] : names[i], steps));
            output.WriteLine($"{loaded[^1].Label}: steps {steps[0].Step}-{steps[^1].Step}, final loss {steps[^1].Loss:G4}, accuracy {steps[^1].Accuracy:G3} (moving-average window {CurvePlot.Window(steps.Count)})");
        }

        CurvePlot.Save(png, TrainingLog.Panels(loaded, "loss", "accuracy"), title ?? string.Join(" vs ", loaded.Select(r => r.Label)));
        output.WriteLine($"Saved {png}");
        return 0;
    }

    /// <summary>
    /// Each video's embedding (its serving views averaged, L2-normalized: what <c>cvrl embed</c> returns)
    /// projected to its two principal components and coloured by class: whether classes separate at all
    /// before a probe is trained. Videos Core refuses are reported and left out.
    /// </summary>
    public static async Task<int> EmbeddingsAsync(CommandArgs args, TextWriter output, TextWriter error)
    {
        string modelFolder = args.Required("--model");
        string data = args.Required("--data");
        string png = args.Required("--out");
        string? cache = args.Optional("--features-cache") ?? ProbeCommands.DefaultFeatureCache;
        int perClass = args.Int("--max-per-class", int.MaxValue);
        bool cpu = args.Flag("--cpu");
        args.RejectUnknown();

        var dataset = LabelledVideos.Load(data);
        var videos = dataset.Videos.GroupBy(v => v.Label).SelectMany(g => g.Take(perClass)).ToArray();
        await using var model = await ProbeCommands.OpenAsync(modelFolder, cpu);
        using var reader = new VideoReader();
        var features = new ProbeFeatures(new VideoEmbedder(reader), cache);
        var embeddings = new List<float[]>();
        var classes = new List<int>();
        int done = 0;
        foreach (var video in videos)
        {
            try
            {
                embeddings.Add(VideoEmbedder.Mean(await features.TestAsync(model, video.Path)));
                classes.Add(dataset.ClassIndex(video.Label));
            }
            catch (CvrlException e)
            {
                error.WriteLine($"cvrl: {video.Path}: {e.Message} (left out)");
            }

            ProbeCommands.Progress(error, "embed", ++done, videos.Length);
        }

        if (embeddings.Count < 2)
        {
            throw new InvalidDataException($"Only {embeddings.Count} video(s) could be embedded: a projection needs at least two.");
        }

        var pca = Pca.Fit(embeddings, Math.Min(2, embeddings[0].Length));
        var ratio = pca.ExplainedRatio;
        var points = embeddings.Select((e, i) =>
        {
            var p = pca.Project(e);
            return (p[0], p.Length > 1 ? p[1] : 0, classes[i]);
        }).ToArray();
        output.WriteLine($"PCA of {embeddings.Count} video embeddings ({embeddings[0].Length}-d, {dataset.Classes.Count} classes): " +
            $"explained variance PC1 {ratio[0]:P1}, PC2 {(ratio.Length > 1 ? ratio[1] : 0):P1}, together {ratio.Sum():P1}");
        ScatterPlot.Save(png, points, dataset.Classes, $"{model.Name} on {Path.GetFileName(Path.TrimEndingDirectorySeparator(data))}: {embeddings.Count} videos, PCA of embeddings",
            $"PC1 ({ratio[0]:P1} of variance)", $"PC2 ({(ratio.Length > 1 ? ratio[1] : 0):P1} of variance)");
        output.WriteLine($"Saved {png}");
        return 0;
    }
}
