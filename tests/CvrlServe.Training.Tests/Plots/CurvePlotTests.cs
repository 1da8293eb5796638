using CvrlServe.Training.Plots;

namespace CvrlServe.Training.Tests.Plots;

public sealed class CurvePlotTests
{
    [Fact]
    public void MovingAverage_IsTheTrailingMeanOverAPartialWindowAtTheStart()
    {
        double[] values = [4, 8, 6, 2, 10, 0];
        // window 3: 4; (4+8)/2; (4+8+6)/3; (8+6+2)/3; (6+2+10)/3; (2+10+0)/3
        Assert.Equal([4, 6, 6, 16 / 3.0, 6, 4], CurvePlot.MovingAverage(values, 3));
        Assert.Equal(values, CurvePlot.MovingAverage(values, 1));
    }

    [Fact]
    public void MovingAverage_SkipsNonFiniteValues_AndIsNaNWhereTheWindowHoldsNone()
    {
        double[] values = [2, double.NaN, double.NaN, 4, double.PositiveInfinity];
        // window 2: 2; 2; none; 4; 4
        var average = CurvePlot.MovingAverage(values, 2);
        Assert.Equal([2, 2], average[..2]);
        Assert.True(double.IsNaN(average[2]));
        Assert.Equal([4, 4], average[3..]);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(99, 1)]
    [InlineData(100, 2)]
    [InlineData(5000, 100)]
    public void Window_IsAFiftiethOfTheSeries(int count, int window) => Assert.Equal(window, CurvePlot.Window(count));
}
