using SkiaSharp;

namespace CvrlServe.Training.Plots;

/// <summary>The colours plots tell series and classes apart by.</summary>
internal static class PlotColours
{
    // matplotlib's tab10: distinct hues that stay distinct when faint.
    private static readonly SKColor[] Tab10 =
    [
        new(31, 119, 180), new(255, 127, 14), new(44, 160, 44), new(214, 39, 40), new(148, 103, 189),
        new(140, 86, 75), new(227, 119, 194), new(127, 127, 127), new(188, 189, 34), new(23, 190, 207),
    ];

    /// <summary>tab10 for the first ten, then hues spread by the golden angle so neighbours differ.</summary>
    public static SKColor Of(int index) => index < Tab10.Length ? Tab10[index] : SKColor.FromHsv((float)(index * 137.508 % 360), 75, 85);
}
