namespace CvrlServe.Core.Probes;

/// <summary>Scores a probe from per-example class probabilities (views already averaged). Pure.</summary>
public static class ProbeEvaluation
{
    /// <summary>The average of several views' class probabilities (CVRL averages softmax over its test views).</summary>
    public static float[] AverageViews(IReadOnlyList<float[]> views)
    {
        ArgumentNullException.ThrowIfNull(views);
        var mean = new float[views[0].Length];
        foreach (var view in views)
        {
            for (int c = 0; c < mean.Length; c++)
            {
                mean[c] += view[c] / views.Count;
            }
        }

        return mean;
    }

    public static ProbeMetrics Evaluate(IReadOnlyList<string> classes, IReadOnlyList<(string Label, float[] Probabilities)> examples)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(examples);
        int k = classes.Count;
        var confusion = Enumerable.Range(0, k).Select(_ => new int[k]).ToArray();
        int top1 = 0, top5 = 0;
        double logLoss = 0;
        foreach (var (label, p) in examples)
        {
            int truth = IndexOf(classes, label);
            var ranked = Enumerable.Range(0, k).OrderByDescending(c => p[c]).ToArray();
            confusion[truth][ranked[0]]++;
            top1 += ranked[0] == truth ? 1 : 0;
            top5 += ranked.Take(5).Contains(truth) ? 1 : 0;
            logLoss -= Math.Log(Math.Max(p[truth], 1e-15));
        }

        int n = Math.Max(1, examples.Count);
        var precision = Enumerable.Range(0, k).Select(c => Ratio(confusion[c][c], confusion.Sum(row => row[c]))).ToArray();
        var recall = Enumerable.Range(0, k).Select(c => Ratio(confusion[c][c], confusion[c].Sum())).ToArray();
        return new ProbeMetrics(examples.Count, (double)top1 / n, (double)top5 / n, logLoss / n, classes, precision, recall, confusion);
    }

    private static double Ratio(int a, int b) => b == 0 ? 0 : (double)a / b;

    private static int IndexOf(IReadOnlyList<string> classes, string label)
    {
        for (int i = 0; i < classes.Count; i++)
        {
            if (classes[i] == label)
            {
                return i;
            }
        }

        throw new ArgumentException($"'{label}' is not one of the probe's classes ({string.Join(", ", classes)}).", nameof(label));
    }
}
