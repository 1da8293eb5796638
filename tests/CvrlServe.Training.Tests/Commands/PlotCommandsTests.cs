using System.Globalization;
using CvrlServe.Training.Plots;
using CvrlServe.Training.Trainers;
using SkiaSharp;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Commands;

[Collection(SharedTrainingVideos.Name)]
public sealed class PlotCommandsTests(TrainingVideos videos, ITestOutputHelper output) : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-plots-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void PlotCurves_TwoRuns_WritesAPanelPerQuantity()
    {
        string consistent = WriteRun("consistent", steps: 120, start: 0, rate: 0.03);
        string inconsistent = WriteRun("inconsistent", steps: 120, start: 0, rate: 0.01);
        string png = Path.Combine(_folder, "curves.png");

        var (code, stdout, stderr) = ModelCommandsTests.Run("plot-curves", "--run", consistent, "--run", inconsistent, "--out", png, "--title", "augmentation");
        output.WriteLine(stdout);

        Assert.True(code == 0, stderr);
        Assert.Contains("consistent: steps 0-119", stdout, StringComparison.Ordinal);
        Assert.Contains("moving-average window 2", stdout, StringComparison.Ordinal);
        using var image = SKBitmap.Decode(png);
        Assert.Equal((2 * CurvePlot.PanelWidth, CurvePlot.Height), (image.Width, image.Height));
    }

    [Fact]
    public void PlotCurves_AResumeThatRewroteSteps_KeepsTheLaterRecord()
    {
        string run = WriteRun("resumed", steps: 10, start: 0, rate: 0.1);
        File.AppendAllLines(Path.Combine(run, "metrics.csv"), ["5,0.5,0.9,1,0.1,10,1", "10,0.4,0.95,1,0.1,10,1"]);

        var steps = TrainingLog.Read(Path.Combine(run, "metrics.csv"));

        Assert.Equal(Enumerable.Range(0, 11).Select(i => (long)i), steps.Select(s => s.Step));
        Assert.Equal(0.5, steps[5].Loss);
    }

    [Theory]
    [InlineData("plot-curves --out x.png", "--run is required")]
    [InlineData("plot-curves --run /nonexistent/run --out x.png", "metrics.csv")]
    public void PlotCurves_BadCommandLines(string line, string message)
    {
        var (code, _, stderr) = ModelCommandsTests.Run(line.Split(' '));
        Assert.NotEqual(0, code);
        Assert.Contains(message, stderr, StringComparison.Ordinal);
    }

    [Fact]
    public void PlotEmbeddings_LabelledVideos_ReportsExplainedVarianceAndDrawsTheScatter()
    {
        string model = Path.Combine(_folder, "m");
        Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d18", "--width", "0.25", "--seed", "3", "--out", model,
            "--frames", "4", "--short-side", "40", "--crop", "32", "--clips", "2").Code);
        string png = Path.Combine(_folder, "embeddings.png");

        var (code, stdout, stderr) = ModelCommandsTests.Run("plot-embeddings", "--model", model, "--data", videos.Labelled, "--out", png,
            "--max-per-class", "3", "--features-cache", Path.Combine(_folder, "features"), "--cpu");
        output.WriteLine(stdout);

        Assert.True(code == 0, stderr);
        Assert.Contains("PCA of 9 video embeddings (128-d, 3 classes)", stdout, StringComparison.Ordinal);
        Assert.Contains("explained variance PC1", stdout, StringComparison.Ordinal);
        using var image = SKBitmap.Decode(png);
        Assert.Equal((ScatterPlot.Width, ScatterPlot.Height), (image.Width, image.Height));
    }

    /// <summary>A metrics.csv as TrainingLog writes it: a loss decaying at <paramref name="rate"/> with noise, accuracy rising.</summary>
    private string WriteRun(string name, int steps, int start, double rate)
    {
        string run = Path.Combine(_folder, name);
        Directory.CreateDirectory(run);
        var random = new Random(name.Length);
        var lines = new List<string> { "step,loss,accuracy,entropy,lr,clips_per_s,elapsed_s" };
        for (int s = start; s < start + steps; s++)
        {
            double loss = 5 * Math.Exp(-rate * s) + random.NextDouble();
            lines.Add(string.Create(CultureInfo.InvariantCulture, $"{s},{loss:G6},{1 - loss / 6:G4},{3.5:G5},{0.1:G5},{12.5:F2},{s * 0.5:F2}"));
        }

        File.WriteAllLines(Path.Combine(run, "metrics.csv"), lines);
        return run;
    }
}
