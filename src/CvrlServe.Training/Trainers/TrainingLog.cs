using System.Diagnostics;
using System.Globalization;

namespace CvrlServe.Training.Trainers;

/// <summary>One logged step.</summary>
public sealed record StepMetrics(long Step, double Loss, double Accuracy, double Entropy, double LearningRate, double ClipsPerSecond, double ElapsedSeconds);

/// <summary>
/// Metrics to CSV (appended across resumes) and a progress line: redrawn in place on a terminal,
/// one line every few percent when the output is a file or a pipe.
/// </summary>
public sealed class TrainingLog : IDisposable
{
    private const string Header = "step,loss,accuracy,entropy,lr,clips_per_s,elapsed_s";
    private readonly StreamWriter _csv;
    private readonly TextWriter _progress;
    private readonly bool _interactive;
    private readonly long _total;
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private long _firstStep = -1;

    public TrainingLog(string csvPath, TextWriter progress, bool interactive, long totalSteps)
    {
        bool fresh = !File.Exists(csvPath);
        _csv = new StreamWriter(csvPath, append: true);
        if (fresh)
        {
            _csv.WriteLine(Header);
        }

        _progress = progress;
        _interactive = interactive;
        _total = totalSteps;
    }

    public List<StepMetrics> Steps { get; } = [];

    public TimeSpan Elapsed => _clock.Elapsed;

    public void Record(StepMetrics metrics, string label)
    {
        ArgumentNullException.ThrowIfNull(metrics);
        Steps.Add(metrics);
        _csv.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"{metrics.Step},{metrics.Loss:G6},{metrics.Accuracy:G4},{metrics.Entropy:G5},{metrics.LearningRate:G5},{metrics.ClipsPerSecond:F2},{metrics.ElapsedSeconds:F2}"));
        _csv.Flush();

        if (_firstStep < 0)
        {
            _firstStep = metrics.Step;
        }

        long done = metrics.Step + 1 - _firstStep;
        long left = _total - metrics.Step - 1;
        var eta = TimeSpan.FromSeconds(_clock.Elapsed.TotalSeconds / Math.Max(1, done) * left);
        int width = 24;
        int filled = (int)(width * (metrics.Step + 1) / _total);
        string line = string.Create(CultureInfo.InvariantCulture,
            $"{label} [{new string('#', filled)}{new string('.', width - filled)}] {metrics.Step + 1}/{_total} loss {metrics.Loss:F4} acc {metrics.Accuracy:P0} lr {metrics.LearningRate:G3} {metrics.ClipsPerSecond:F1} clips/s ETA {eta:hh\\:mm\\:ss}");
        if (_interactive)
        {
            _progress.Write($"\r{line}");
            if (left == 0)
            {
                _progress.WriteLine();
            }
        }
        else if (left == 0 || done == 1 || (metrics.Step + 1) % Math.Max(1, _total / 20) == 0)
        {
            _progress.WriteLine(line);
        }
    }

    /// <summary>Draws loss and accuracy over the logged steps to a PNG (nothing for fewer than two steps).</summary>
    public void SaveCurves(string path, string lossName, string accuracyName, string title)
    {
        if (Steps.Count > 1)
        {
            Plots.CurvePlot.Save(path, Panels([("", Steps)], lossName, accuracyName), title);
        }
    }

    /// <summary>Loss and accuracy panels with one curve per run.</summary>
    public static Plots.CurvePanel[] Panels(IReadOnlyList<(string Label, IReadOnlyList<StepMetrics> Steps)> runs, string lossName, string accuracyName)
    {
        ArgumentNullException.ThrowIfNull(runs);
        Plots.CurveSeries Series(string label, IReadOnlyList<StepMetrics> steps, Func<StepMetrics, double> value) =>
            new(label, steps.Select(s => (double)s.Step).ToArray(), steps.Select(value).ToArray());
        return
        [
            new(lossName, runs.Select(r => Series(r.Label, r.Steps, s => s.Loss)).ToArray()),
            new(accuracyName, runs.Select(r => Series(r.Label, r.Steps, s => s.Accuracy)).ToArray()),
        ];
    }

    /// <summary>
    /// Reads a metrics.csv this class wrote, one entry per step in step order. A resume from an earlier
    /// checkpoint appends steps already logged; the later record of a step wins, as it is the run that went on.
    /// </summary>
    public static IReadOnlyList<StepMetrics> Read(string csvPath)
    {
        using var lines = File.ReadLines(csvPath).GetEnumerator();
        if (!lines.MoveNext() || lines.Current.Trim() != Header)
        {
            throw new InvalidDataException($"'{csvPath}' is not a training metrics file: its first line is not '{Header}'.");
        }

        var steps = new SortedDictionary<long, StepMetrics>();
        int number = 1;
        while (lines.MoveNext())
        {
            number++;
            if (lines.Current.Length == 0)
            {
                continue;
            }

            var fields = lines.Current.Split(',');
            var values = new double[7];
            bool parsed = fields.Length == values.Length;
            for (int i = 0; parsed && i < values.Length; i++)
            {
                parsed = double.TryParse(fields[i], NumberStyles.Float, CultureInfo.InvariantCulture, out values[i]);
            }

            if (!parsed)
            {
                throw new InvalidDataException($"'{csvPath}' line {number} is not seven numbers: '{lines.Current}'.");
            }

            steps[(long)values[0]] = new StepMetrics((long)values[0], values[1], values[2], values[3], values[4], values[5], values[6]);
        }

        return steps.Values.ToArray();
    }

    public void Dispose() => _csv.Dispose();
}
