using System.Globalization;
using SkiaSharp;

namespace CvrlServe.Training.Plots;

/// <summary>Draws training curves (one panel per series, step on x) to a PNG with SkiaSharp.</summary>
public static class CurvePlot
{
    public static void Save(string path, IReadOnlyList<double> steps, IReadOnlyList<(string Name, IReadOnlyList<double> Values)> series, string title)
    {
        ArgumentNullException.ThrowIfNull(steps);
        ArgumentNullException.ThrowIfNull(series);
        const int panelWidth = 480, height = 360, margin = 56;
        int width = panelWidth * series.Count;
        using var surface = SKSurface.Create(new SKImageInfo(width, height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        using var line = new SKPaint { Color = new SKColor(31, 119, 180), StrokeWidth = 2, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 13, IsAntialias = true };
        canvas.DrawText(title, 10, 18, text);

        for (int s = 0; s < series.Count; s++)
        {
            var (name, values) = series[s];
            float left = s * panelWidth + margin, right = (s + 1) * panelWidth - 16, top = 36, bottom = height - 40;
            double xMin = steps.Min(), xMax = Math.Max(steps.Max(), xMin + 1);
            double yMin = values.Min(), yMax = values.Max();
            if (yMax - yMin < 1e-9)
            {
                (yMin, yMax) = (yMin - 0.5, yMax + 0.5);
            }

            float X(double v) => left + (float)((v - xMin) / (xMax - xMin)) * (right - left);
            float Y(double v) => bottom - (float)((v - yMin) / (yMax - yMin)) * (bottom - top);
            for (int k = 0; k <= 4; k++)
            {
                double v = yMin + (yMax - yMin) * k / 4;
                canvas.DrawLine(left, Y(v), right, Y(v), grid);
                canvas.DrawText(v.ToString("G3", CultureInfo.InvariantCulture), s * panelWidth + 4, Y(v) + 4, text);
            }

            canvas.DrawRect(left, top, right - left, bottom - top, axis);
            using var pathLine = new SKPath();
            for (int i = 0; i < values.Count; i++)
            {
                if (i == 0)
                {
                    pathLine.MoveTo(X(steps[i]), Y(values[i]));
                }
                else
                {
                    pathLine.LineTo(X(steps[i]), Y(values[i]));
                }
            }

            canvas.DrawPath(pathLine, line);
            canvas.DrawText(name, left + 6, top + 16, text);
            canvas.DrawText($"step {xMin:G6}", left, bottom + 18, text);
            canvas.DrawText($"{xMax:G6}", right - 40, bottom + 18, text);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }
}
