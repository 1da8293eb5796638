using TorchSharp;

namespace CvrlServe.Training.Tests;

public class TorchLoadingTests
{
    [Fact]
    public void Conv3d_ForwardAndBackward_RunsOnThisMachine()
    {
        double norm = TorchCheck.Conv3dRoundTrip(torch.CPU);
        Assert.True(double.IsFinite(norm) && norm > 0, $"weight gradient norm was {norm}");
    }

    [Fact]
    public void Conv3d_OutputShape_KeepsClipSizeWithSamePadding()
    {
        using var conv = torch.nn.Conv3d(3, 8, kernel_size: 3, padding: 1);
        using var input = torch.zeros([1, 3, 4, 16, 16]);
        using var output = conv.forward(input);
        Assert.Equal([1L, 8, 4, 16, 16], output.shape);
    }

    [Fact]
    public async Task Cli_Doctor_ExitsZeroAndSaysLibtorchLoaded()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(0, await Cli.RunAsync(["doctor"], output, error));
        Assert.Contains("libtorch loaded", output.ToString(), StringComparison.Ordinal);
    }

    [Fact]
    public async Task Cli_UnknownCommand_NonZeroWithMessage()
    {
        using var output = new StringWriter();
        using var error = new StringWriter();
        Assert.Equal(2, await Cli.RunAsync(["frobnicate"], output, error));
        Assert.Contains("Unknown command", error.ToString(), StringComparison.Ordinal);
    }
}
