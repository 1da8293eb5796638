using CvrlServe.Training.Plots;

namespace CvrlServe.Training.Tests.Plots;

public sealed class PcaTests
{
    [Fact]
    public void Fit_FindsConstructedAxes_TheirVariances_AndProjects()
    {
        // An orthonormal basis of R^4 (a rotation of the standard one) and points ±3·u1, ±1·u2, ±0.3·u3 about
        // a mean: the population covariance is (18·u1u1ᵀ + 2·u2u2ᵀ + 0.18·u3u3ᵀ)/6, so the axes are u1, u2
        // with variances 3 and 1/3, and the total variance is 3 + 1/3 + 0.03.
        double[][] u =
        [
            [0.5, 0.5, 0.5, 0.5],
            [0.5, -0.5, 0.5, -0.5],
            [0.5, 0.5, -0.5, -0.5],
            [0.5, -0.5, -0.5, 0.5],
        ];
        double[] mean = [1, -2, 0.5, 3];
        double[] scales = [3, 1, 0.3];
        var points = new List<float[]>();
        for (int k = 0; k < scales.Length; k++)
        {
            foreach (int sign in new[] { 1, -1 })
            {
                points.Add(mean.Select((m, d) => (float)(m + sign * scales[k] * u[k][d])).ToArray());
            }
        }

        var pca = Pca.Fit(points, 2);

        Assert.Equal(mean, pca.Mean, (a, b) => Math.Abs(a - b) < 1e-6);
        Assert.Equal(1, Math.Abs(Dot(pca.Components[0], u[0])), 6);
        Assert.Equal(1, Math.Abs(Dot(pca.Components[1], u[1])), 6);
        Assert.Equal(0, Dot(pca.Components[0], pca.Components[1]), 9);
        Assert.Equal(3, pca.Variances[0], 5);
        Assert.Equal(1 / 3.0, pca.Variances[1], 5);
        Assert.Equal(3 + 1 / 3.0 + 0.03, pca.TotalVariance, 5);
        Assert.Equal(3 / (3 + 1 / 3.0 + 0.03), pca.ExplainedRatio[0], 5);

        // The first point lies 3 along u1: its coordinates are (±3, 0).
        var projected = pca.Project(points[0]);
        Assert.Equal(3, Math.Abs(projected[0]), 5);
        Assert.Equal(0, projected[1], 5);
    }

    [Fact]
    public void Fit_IdenticalPoints_HaveNoVariance()
    {
        var pca = Pca.Fit([[1f, 2f, 3f], [1f, 2f, 3f]], 2);
        Assert.Equal([0, 0], pca.Variances);
        Assert.Equal([0, 0], pca.ExplainedRatio);
    }

    private static double Dot(double[] a, double[] b) => a.Zip(b, (x, y) => x * y).Sum();
}
