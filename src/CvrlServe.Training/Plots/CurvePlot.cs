using System.Globalization;
using SkiaSharp;

namespace CvrlServe.Training.Plots;

/// <summary>One curve: a run's value at each logged step.</summary>
public sealed record CurveSeries(string Label, IReadOnlyList<double> Steps, IReadOnlyList<double> Values);

/// <summary>One panel: a quantity (loss, accuracy) with one curve per run, overlaid.</summary>
public sealed record CurvePanel(string Name, IReadOnlyList<CurveSeries> Series);

/// <summary>
/// Training curves to a PNG with SkiaSharp: one panel per quantity, step on x. Per-step values are too noisy
/// to read, so each run is drawn twice in its colour: the raw values faint and thin, their trailing moving
/// average (<see cref="Window"/>) bold on top. Several runs share a panel, told apart by a legend.
/// </summary>
public static class CurvePlot
{
    public const int PanelWidth = 480;
    public const int Height = 360;

    /// <summary>The moving-average window for a series of <paramref name="count"/> points: max(1, count/50), about 50 windows per run.</summary>
    public static int Window(int count) => Math.Max(1, count / 50);

    /// <summary>
    /// The trailing moving average: point i is the mean of the finite values among the last
    /// <paramref name="window"/> points up to and including i (fewer at the start), NaN when none is finite.
    /// </summary>
    public static double[] MovingAverage(IReadOnlyList<double> values, int window)
    {
        ArgumentNullException.ThrowIfNull(values);
        ArgumentOutOfRangeException.ThrowIfLessThan(window, 1);
        var average = new double[values.Count];
        double sum = 0;
        int finite = 0;
        for (int i = 0; i < values.Count; i++)
        {
            if (double.IsFinite(values[i]))
            {
                sum += values[i];
                finite++;
            }

            if (i >= window && double.IsFinite(values[i - window]))
            {
                sum -= values[i - window];
                finite--;
            }

            average[i] = finite > 0 ? sum / finite : double.NaN;
        }

        return average;
    }

    /// <summary>Saves <paramref name="panels"/> side by side: an image <see cref="PanelWidth"/>·panels wide and <see cref="Height"/> high.</summary>
    public static void Save(string path, IReadOnlyList<CurvePanel> panels, string title)
    {
        ArgumentNullException.ThrowIfNull(panels);
        ArgumentOutOfRangeException.ThrowIfZero(panels.Count);
        using var surface = SKSurface.Create(new SKImageInfo(PanelWidth * panels.Count, Height));
        var canvas = surface.Canvas;
        canvas.Clear(SKColors.White);
        using var text = new SKPaint { Color = SKColors.Black, TextSize = 13, IsAntialias = true };
        canvas.DrawText(title, 10, 18, text);
        for (int p = 0; p < panels.Count; p++)
        {
            DrawPanel(canvas, panels[p], p * PanelWidth, text);
        }

        using var image = surface.Snapshot();
        using var png = image.Encode(SKEncodedImageFormat.Png, 100);
        using var file = File.Create(path);
        png.SaveTo(file);
    }

    private static void DrawPanel(SKCanvas canvas, CurvePanel panel, float x0, SKPaint text)
    {
        const float margin = 56, top = 44, bottom = Height - 40;
        float left = x0 + margin, right = x0 + PanelWidth - 16;
        var steps = panel.Series.SelectMany(s => s.Steps).ToArray();
        var finite = panel.Series.SelectMany(s => s.Values).Where(double.IsFinite).ToArray();
        double xMin = steps.Length > 0 ? steps.Min() : 0, xMax = Math.Max(steps.Length > 0 ? steps.Max() : 1, xMin + 1);
        double yMin = finite.Length > 0 ? finite.Min() : 0, yMax = finite.Length > 0 ? finite.Max() : 1;
        if (yMax - yMin < 1e-9)
        {
            (yMin, yMax) = (yMin - 0.5, yMax + 0.5);
        }

        float X(double v) => left + (float)((v - xMin) / (xMax - xMin)) * (right - left);
        float Y(double v) => bottom - (float)((v - yMin) / (yMax - yMin)) * (bottom - top);
        using var axis = new SKPaint { Color = SKColors.Black, StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var grid = new SKPaint { Color = new SKColor(225, 225, 225), StrokeWidth = 1, Style = SKPaintStyle.Stroke };
        for (int k = 0; k <= 4; k++)
        {
            double v = yMin + (yMax - yMin) * k / 4;
            canvas.DrawLine(left, Y(v), right, Y(v), grid);
            canvas.DrawText(v.ToString("G3", CultureInfo.InvariantCulture), x0 + 4, Y(v) + 4, text);
        }

        canvas.Save();
        canvas.ClipRect(new SKRect(left, top, right, bottom));
        using var raw = new SKPaint { StrokeWidth = 1, IsAntialias = true, Style = SKPaintStyle.Stroke };
        using var smooth = new SKPaint { StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
        var windows = new List<int>();
        for (int s = 0; s < panel.Series.Count; s++)
        {
            var series = panel.Series[s];
            var colour = PlotColours.Of(s);
            raw.Color = colour.WithAlpha(70);
            smooth.Color = colour;
            int window = Window(series.Values.Count);
            windows.Add(window);
            using var rawPath = Polyline(series.Steps, series.Values, X, Y);
            using var smoothPath = Polyline(series.Steps, MovingAverage(series.Values, window), X, Y);
            canvas.DrawPath(rawPath, raw);
            canvas.DrawPath(smoothPath, smooth);
        }

        canvas.Restore();
        canvas.DrawRect(left, top, right - left, bottom - top, axis);
        var distinct = windows.Distinct().ToArray();
        string windowText = distinct.Length == 1 ? $"{distinct[0]}" : string.Join("/", windows);
        canvas.DrawText($"{panel.Name}; bold: trailing mean of {windowText} steps", left, top - 4, text);
        canvas.DrawText($"step {xMin:G6}", left, bottom + 18, text);
        canvas.DrawText($"{xMax:G6}", right - 40, bottom + 18, text);
        if (panel.Series.Count > 1)
        {
            DrawLegend(canvas, panel.Series.Select(s => s.Label).ToArray(), right, top, text);
        }
    }

    /// <summary>A polyline through the finite points; a non-finite value breaks the line rather than hiding the gap.</summary>
    private static SKPath Polyline(IReadOnlyList<double> steps, IReadOnlyList<double> values, Func<double, float> x, Func<double, float> y)
    {
        var path = new SKPath();
        bool drawing = false;
        for (int i = 0; i < values.Count; i++)
        {
            if (!double.IsFinite(values[i]))
            {
                drawing = false;
            }
            else if (drawing)
            {
                path.LineTo(x(steps[i]), y(values[i]));
            }
            else
            {
                path.MoveTo(x(steps[i]), y(values[i]));
                drawing = true;
            }
        }

        return path;
    }

    private static void DrawLegend(SKCanvas canvas, string[] labels, float right, float top, SKPaint text)
    {
        const float row = 16, swatch = 18;
        float width = labels.Max(l => text.MeasureText(l)) + swatch + 14;
        float left = right - width - 4, y = top + 4;
        using var box = new SKPaint { Color = SKColors.White.WithAlpha(220), Style = SKPaintStyle.Fill };
        using var border = new SKPaint { Color = new SKColor(180, 180, 180), Style = SKPaintStyle.Stroke, StrokeWidth = 1 };
        using var line = new SKPaint { StrokeWidth = 2.5f, IsAntialias = true, Style = SKPaintStyle.Stroke };
        var rect = new SKRect(left, y, right - 4, y + labels.Length * row + 6);
        canvas.DrawRect(rect, box);
        canvas.DrawRect(rect, border);
        for (int i = 0; i < labels.Length; i++)
        {
            float baseline = y + (i + 1) * row;
            line.Color = PlotColours.Of(i);
            canvas.DrawLine(left + 4, baseline - 4, left + 4 + swatch, baseline - 4, line);
            canvas.DrawText(labels[i], left + swatch + 10, baseline, text);
        }
    }
}
