namespace CvrlServe.Training.Plots;

/// <summary>
/// Principal axes of a point cloud: the mean, unit component vectors (most variance first), the variance
/// along each and the total variance (the covariance's trace), all with the population covariance (1/n).
/// </summary>
public sealed record PcaResult(double[] Mean, double[][] Components, double[] Variances, double TotalVariance)
{
    /// <summary>Share of the total variance along each component.</summary>
    public double[] ExplainedRatio => Variances.Select(v => TotalVariance > 0 ? v / TotalVariance : 0).ToArray();

    /// <summary>Coordinates of <paramref name="point"/> along the components, about the mean.</summary>
    public double[] Project(IReadOnlyList<float> point)
    {
        ArgumentNullException.ThrowIfNull(point);
        return Components.Select(c =>
        {
            double sum = 0;
            for (int d = 0; d < c.Length; d++)
            {
                sum += (point[d] - Mean[d]) * c[d];
            }

            return sum;
        }).ToArray();
    }
}

/// <summary>
/// Principal component analysis by power iteration with deflation. The covariance is never formed: it is
/// applied as Xᵀ(Xv)/n on the centred points, so a 2048-d embedding costs n·d per iteration, not d².
/// Each component is kept orthogonal to those already found (deflation by projection, which stays stable
/// where subtracting λvvᵀ would let round-off leak the earlier component back in).
/// </summary>
public static class Pca
{
    public static PcaResult Fit(IReadOnlyList<float[]> points, int components, int maxIterations = 2000, double tolerance = 1e-12, int seed = 0)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentOutOfRangeException.ThrowIfZero(points.Count);
        int n = points.Count, dimension = points[0].Length;
        ArgumentOutOfRangeException.ThrowIfLessThan(components, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(components, dimension);
        var mean = new double[dimension];
        foreach (var p in points)
        {
            if (p.Length != dimension)
            {
                throw new ArgumentException($"Every point needs {dimension} values (got one with {p.Length}).", nameof(points));
            }

            for (int d = 0; d < dimension; d++)
            {
                mean[d] += p[d] / (double)n;
            }
        }

        var centred = points.Select(p => p.Select((v, d) => v - mean[d]).ToArray()).ToArray();
        double total = centred.Sum(c => c.Sum(v => v * v)) / n;
        var random = new Random(seed);
        var found = new double[components][];
        var variances = new double[components];
        for (int k = 0; k < components; k++)
        {
            var v = Enumerable.Range(0, dimension).Select(_ => random.NextDouble() - 0.5).ToArray();
            Orthonormalize(v, found.AsSpan(0, k));
            for (int iteration = 0; iteration < maxIterations; iteration++)
            {
                var next = Covariance(centred, v);
                Orthonormalize(next, found.AsSpan(0, k));
                double change = 0;
                for (int d = 0; d < dimension; d++)
                {
                    change += (next[d] - v[d]) * (next[d] - v[d]);
                }

                v = next;
                if (change < tolerance)
                {
                    break;
                }
            }

            // A sign convention, so the same data always gives the same picture: the largest entry is positive.
            int largest = Enumerable.Range(0, dimension).MaxBy(d => Math.Abs(v[d]));
            if (v[largest] < 0)
            {
                for (int d = 0; d < dimension; d++)
                {
                    v[d] = -v[d];
                }
            }

            found[k] = v;
            variances[k] = Dot(v, Covariance(centred, v)); // the Rayleigh quotient: true of v even if not fully converged
        }

        return new PcaResult(mean, found, variances, total);
    }

    /// <summary>C·v = Xᵀ(X·v)/n for centred rows X.</summary>
    private static double[] Covariance(double[][] centred, double[] v)
    {
        var result = new double[v.Length];
        foreach (var row in centred)
        {
            double projection = Dot(row, v) / centred.Length;
            for (int d = 0; d < v.Length; d++)
            {
                result[d] += projection * row[d];
            }
        }

        return result;
    }

    /// <summary>Removes the components along <paramref name="basis"/> and scales to unit length (a zero vector stays zero).</summary>
    private static void Orthonormalize(double[] v, ReadOnlySpan<double[]> basis)
    {
        foreach (var b in basis)
        {
            double along = Dot(v, b);
            for (int d = 0; d < v.Length; d++)
            {
                v[d] -= along * b[d];
            }
        }

        double norm = Math.Sqrt(Dot(v, v));
        if (norm > 0)
        {
            for (int d = 0; d < v.Length; d++)
            {
                v[d] /= norm;
            }
        }
    }

    private static double Dot(double[] a, double[] b)
    {
        double sum = 0;
        for (int d = 0; d < a.Length; d++)
        {
            sum += a[d] * b[d];
        }

        return sum;
    }
}
