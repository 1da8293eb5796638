namespace CvrlServe.Core.Probes;

/// <summary>Fits a probe: an L2 sweep on a held-out split of whole videos, then a refit on every example with the best L2.</summary>
public static class ProbeTraining
{
    /// <summary>
    /// Sweeps <see cref="ProbeTrainingOptions.Candidates"/> on a split that holds out whole groups (videos:
    /// the clips of one video are near-duplicates, so splitting clips would score the sweep on its own
    /// training data), then refits on all examples with the best L2 (top-1, then log-loss).
    /// </summary>
    public static (LinearProbe Probe, double L2, IReadOnlyList<SweepResult> Sweep) Fit(IReadOnlyList<(float[] Features, string Label, string Group)> examples, ProbeTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(options);
        var (train, validation) = Split(examples, options.ValidationFraction, options.Seed);
        var sweep = new List<SweepResult>();
        if (validation.Count > 0 && train.Select(e => e.Label).Distinct().Count() >= 2)
        {
            var trainPairs = train.Select(e => (e.Features, e.Label)).ToArray();
            foreach (double l2 in options.Candidates)
            {
                var probe = LinearProbe.Train(trainPairs, options.Trainer, l2, options.Seed);
                var scored = validation.Where(v => probe.Classes.Contains(v.Label)).Select(v => (v.Label, probe.Predict(v.Features))).ToArray();
                var metrics = ProbeEvaluation.Evaluate(probe.Classes, scored);
                sweep.Add(new SweepResult(l2, metrics.Top1, metrics.LogLoss));
            }
        }

        double best = sweep.Count == 0 ? options.Candidates[0]
            : sweep.OrderByDescending(s => s.Accuracy).ThenBy(s => s.LogLoss).First().L2;
        return (LinearProbe.Train(examples.Select(e => (e.Features, e.Label)).ToArray(), options.Trainer, best, options.Seed), best, sweep);
    }

    /// <summary>
    /// A seeded split that holds out whole groups, per class: round(fraction × the class's groups) of them,
    /// but at least one group of every class stays in training. Throws when a group carries two labels.
    /// </summary>
    internal static (List<(float[] Features, string Label, string Group)> Train, List<(float[] Features, string Label, string Group)> Validation) Split(
        IReadOnlyList<(float[] Features, string Label, string Group)> examples, double fraction, int seed)
    {
        var labelOf = new Dictionary<string, string>(StringComparer.Ordinal);
        foreach (var e in examples)
        {
            if (labelOf.TryGetValue(e.Group, out var label) && label != e.Label)
            {
                throw new ArgumentException($"Group '{e.Group}' holds examples of '{label}' and '{e.Label}': a group is one video with one label.", nameof(examples));
            }

            labelOf[e.Group] = e.Label;
        }

        var random = new Random(seed);
        var held = new HashSet<string>(StringComparer.Ordinal);
        foreach (var byClass in labelOf.GroupBy(g => g.Value, g => g.Key, StringComparer.Ordinal).OrderBy(c => c.Key, StringComparer.Ordinal))
        {
            var groups = byClass.Order(StringComparer.Ordinal).ToArray();
            random.Shuffle(groups);
            int count = Math.Min(groups.Length - 1, (int)Math.Round(groups.Length * fraction));
            held.UnionWith(groups.Take(count));
        }

        var train = new List<(float[], string, string)>();
        var validation = new List<(float[], string, string)>();
        foreach (var e in examples)
        {
            (held.Contains(e.Group) ? validation : train).Add(e);
        }

        return (train, validation);
    }
}
