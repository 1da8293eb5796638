using SkiaSharp;

namespace CvrlServe.Training.Plots;

/// <summary>A confusion matrix as a PNG: rows are true classes, columns predicted, cells shaded by row share.</summary>
public static class ConfusionPlot
{
    public static void Save(string path, IReadOnlyList<string> classes, int[][] confusion, string title)
    {
        ArgumentNullException.ThrowIfNull(classes);
        ArgumentNullException.ThrowIfNull(confusion);
        const int cell = 36, left = 130, top = 60;
        int k = classes.Count;
        using var surface = SKSurface.Create(new SKImageInfo(left + k * cell + 20, top + k * cell + 40));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 12, IsAntialias = true };
        using var fill = new SKPaint { Style = SKPaintStyle.Fill };
        canvas.DrawText(title, 8, 18, text);
        canvas.DrawText("predicted →", left, top - 24, text);
        for (int r = 0; r < k; r++)
        {
            int total = Math.Max(1, confusion[r].Sum());
            canvas.DrawText(classes[r].Length > 16 ? classes[r][..16] : classes[r], 6, top + r * cell + cell / 2 + 4, text);
            for (int c = 0; c < k; c++)
            {
                byte shade = (byte)(255 - 200 * confusion[r][c] / total);
                fill.Color = r == c ? new SKColor(shade, 255, shade) : new SKColor(255, shade, shade);
                canvas.DrawRect(left + c * cell, top + r * cell, cell - 2, cell - 2, fill);
                canvas.DrawText($"{confusion[r][c]}", left + c * cell + 6, top + r * cell + cell / 2 + 4, text);
            }
        }

        for (int c = 0; c < k; c++)
        {
            canvas.DrawText($"{c}", left + c * cell + 12, top - 6, text);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }
}
