namespace CvrlServe.Training.Export;

/// <summary>
/// How close two [rows, D] outputs are: the largest absolute difference relative to the reference's
/// largest magnitude, and the smallest per-row cosine similarity.
/// </summary>
public sealed record Parity(double MaxAbsDifference, double Scale, double MinCosine)
{
    /// <summary>Tolerances the exporter is held to.</summary>
    public const double MaxRelativeDifference = 1e-4;

    public const double MinCosineSimilarity = 0.99999;

    public double RelativeDifference => MaxAbsDifference / Math.Max(Scale, 1e-12);

    public bool Passes => RelativeDifference <= MaxRelativeDifference && MinCosine >= MinCosineSimilarity;

    public static Parity Compare(ReadOnlySpan<float> reference, ReadOnlySpan<float> candidate, int rows)
    {
        if (reference.Length != candidate.Length || rows < 1 || reference.Length % rows != 0)
        {
            throw new ArgumentException($"Outputs differ in size ({reference.Length} vs {candidate.Length}) or do not split into {rows} rows.");
        }

        int width = reference.Length / rows;
        double maxDiff = 0;
        double scale = 0;
        double minCosine = double.PositiveInfinity;
        for (int r = 0; r < rows; r++)
        {
            double dot = 0, a2 = 0, b2 = 0;
            for (int i = r * width; i < (r + 1) * width; i++)
            {
                double a = reference[i];
                double b = candidate[i];
                maxDiff = Math.Max(maxDiff, Math.Abs(a - b));
                scale = Math.Max(scale, Math.Abs(a));
                dot += a * b;
                a2 += a * a;
                b2 += b * b;
            }

            minCosine = Math.Min(minCosine, dot / Math.Max(Math.Sqrt(a2 * b2), 1e-30));
        }

        return new Parity(maxDiff, scale, minCosine);
    }

    public override string ToString() =>
        $"max |diff| {MaxAbsDifference:E2} ({RelativeDifference:E2} of scale {Scale:G4}), min cosine {MinCosine:F8}";
}
