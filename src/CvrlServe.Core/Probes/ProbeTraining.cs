namespace CvrlServe.Core.Probes;

/// <summary>Fits a probe: an L2 sweep on a held-out split, then a refit on every example with the best L2.</summary>
public static class ProbeTraining
{
    public static (LinearProbe Probe, double L2, IReadOnlyList<SweepResult> Sweep) Fit(IReadOnlyList<(float[] Features, string Label)> examples, ProbeTrainingOptions options)
    {
        ArgumentNullException.ThrowIfNull(examples);
        ArgumentNullException.ThrowIfNull(options);
        var (train, validation) = Split(examples, options.ValidationFraction, options.Seed);
        var sweep = new List<SweepResult>();
        if (validation.Count > 0 && train.Select(e => e.Label).Distinct().Count() >= 2)
        {
            var classes = train.Select(e => e.Label).Distinct(StringComparer.Ordinal).Order(StringComparer.Ordinal).ToArray();
            foreach (double l2 in options.Candidates)
            {
                var probe = LinearProbe.Train(train, options.Trainer, l2, options.Seed);
                var scored = validation.Where(v => probe.Classes.Contains(v.Label)).Select(v => (v.Label, probe.Predict(v.Features))).ToArray();
                var metrics = ProbeEvaluation.Evaluate(probe.Classes, scored);
                sweep.Add(new SweepResult(l2, metrics.Top1, metrics.LogLoss));
            }
        }

        double best = sweep.Count == 0 ? options.Candidates[0]
            : sweep.OrderByDescending(s => s.Accuracy).ThenBy(s => s.LogLoss).First().L2;
        return (LinearProbe.Train(examples, options.Trainer, best, options.Seed), best, sweep);
    }

    /// <summary>A per-class held-out split (at least one example per class stays in training), seeded.</summary>
    internal static (List<(float[] Features, string Label)> Train, List<(float[] Features, string Label)> Validation) Split(
        IReadOnlyList<(float[] Features, string Label)> examples, double fraction, int seed)
    {
        var random = new Random(seed);
        var train = new List<(float[], string)>();
        var validation = new List<(float[], string)>();
        foreach (var group in examples.GroupBy(e => e.Label, StringComparer.Ordinal))
        {
            var items = group.ToArray();
            random.Shuffle(items);
            int held = Math.Min(items.Length - 1, (int)Math.Round(items.Length * fraction));
            validation.AddRange(items.Take(held));
            train.AddRange(items.Skip(held));
        }

        return (train, validation);
    }
}
