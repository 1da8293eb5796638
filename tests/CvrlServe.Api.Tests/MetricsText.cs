using System.Globalization;

namespace CvrlServe.Api.Tests;

/// <summary>
/// Reads Prometheus text. The exporter's registry is process-wide, so tests compare a sample before and
/// after their requests, and run in <see cref="SerialMetrics"/> so no other host's gauges interleave.
/// </summary>
internal static class MetricsText
{
    /// <summary>The value of the series named exactly <paramref name="series"/> (name and labels), 0 when absent.</summary>
    public static double Value(string text, string series)
    {
        foreach (string line in text.Split('\n'))
        {
            if (line.StartsWith(series + " ", StringComparison.Ordinal))
            {
                return double.Parse(line[(series.Length + 1)..], CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class SerialMetrics : ICollectionFixture<ApiVideos>
{
    public const string Name = "serial metrics";
}
