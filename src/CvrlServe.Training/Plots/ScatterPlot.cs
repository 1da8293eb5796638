using System.Globalization;
using SkiaSharp;

namespace CvrlServe.Training.Plots;

/// <summary>A 2-D scatter plot coloured by class, with a legend to the right, as a PNG.</summary>
public static class ScatterPlot
{
    public const int Width = 900;
    public const int Height = 640;
    private const int LegendWidth = 200;

    public static void Save(string path, IReadOnlyList<(double X, double Y, int Class)> points, IReadOnlyList<string> classes, string title, string xLabel, string yLabel)
    {
        ArgumentNullException.ThrowIfNull(points);
        ArgumentNullException.ThrowIfNull(classes);
        const float left = 80, top = 36, bottom = Height - 48, right = Width - LegendWidth - 16;
        using var surface = SKSurface.Create(new SKImageInfo(Width, Height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 13, IsAntialias = true };
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var dot = new SKPaint { IsAntialias = true, Style = SKPaintStyle.Fill };
        canvas.DrawText(title, 10, 18, text);

        double xMin = points.Count > 0 ? points.Min(p => p.X) : -1, xMax = points.Count > 0 ? points.Max(p => p.X) : 1;
        double yMin = points.Count > 0 ? points.Min(p => p.Y) : -1, yMax = points.Count > 0 ? points.Max(p => p.Y) : 1;
        double xPad = Math.Max((xMax - xMin) * 0.05, 1e-9), yPad = Math.Max((yMax - yMin) * 0.05, 1e-9);
        (xMin, xMax, yMin, yMax) = (xMin - xPad, xMax + xPad, yMin - yPad, yMax + yPad);
        float X(double v) => left + (float)((v - xMin) / (xMax - xMin)) * (right - left);
        float Y(double v) => bottom - (float)((v - yMin) / (yMax - yMin)) * (bottom - top);

        canvas.DrawRect(left, top, right - left, bottom - top, axis);
        foreach (var (x, y, c) in points)
        {
            dot.Color = PlotColours.Of(c).WithAlpha(200);
            canvas.DrawCircle(X(x), Y(y), 4, dot);
        }

        canvas.DrawText(xLabel, left, bottom + 34, text);
        canvas.DrawText($"{xMin:G3}", left, bottom + 16, text);
        canvas.DrawText($"{xMax:G3}", right - 40, bottom + 16, text);
        canvas.Save();
        canvas.RotateDegrees(-90, 16, bottom);
        canvas.DrawText(yLabel, 16, bottom, text);
        canvas.Restore();
        canvas.DrawText(yMin.ToString("G3", CultureInfo.InvariantCulture), 22, bottom, text);
        canvas.DrawText(yMax.ToString("G3", CultureInfo.InvariantCulture), 22, top + 10, text);

        // As many classes as fit, then a count of the rest: a legend must not run off the image.
        const float row = 17;
        int fits = (int)((bottom - top) / row) - 1;
        for (int c = 0; c < classes.Count && c < fits; c++)
        {
            float baseline = top + (c + 1) * row;
            dot.Color = PlotColours.Of(c);
            canvas.DrawCircle(right + 24, baseline - 4, 5, dot);
            string name = classes[c].Length > 22 ? classes[c][..22] : classes[c];
            canvas.DrawText($"{name} ({points.Count(p => p.Class == c)})", right + 36, baseline, text);
        }

        if (classes.Count > fits)
        {
            canvas.DrawText($"... and {classes.Count - fits} more", right + 20, top + (fits + 1) * row, text);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }
}
