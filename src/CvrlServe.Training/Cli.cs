using TorchSharp;

namespace CvrlServe.Training;

/// <summary>
/// The <c>cvrl</c> command line. Commands arrive with their issues (pretrain, export, import, embed,
/// probe, eval); for now it can report whether this machine can train.
/// </summary>
internal static class Cli
{
    private const string Usage = """
        cvrl: CVRL video representation training and tooling.

        Usage:
          cvrl doctor     check that libtorch loads and run a Conv3d forward/backward
          cvrl --help     this text
        """;

    public static int Run(string[] args, TextWriter output, TextWriter error)
    {
        switch (args)
        {
            case [] or ["--help"] or ["-h"] or ["help"]:
                output.WriteLine(Usage);
                return args.Length == 0 ? 2 : 0;
            case ["doctor"]:
                return Doctor(output, error);
            default:
                error.WriteLine($"cvrl: unknown command '{string.Join(' ', args)}'. Run 'cvrl --help'.");
                return 2;
        }
    }

    private static int Doctor(TextWriter output, TextWriter error)
    {
        try
        {
            var device = torch.cuda.is_available() ? torch.CUDA : torch.CPU;
            double gradient = TorchCheck.Conv3dRoundTrip(device);
            output.WriteLine($"libtorch loaded; device {device.type}; Conv3d forward/backward ok (|grad| = {gradient:G4}).");
            return 0;
        }
        catch (Exception e) when (e is TypeInitializationException or NotSupportedException or DllNotFoundException)
        {
            error.WriteLine($"cvrl: libtorch did not load: {e.GetBaseException().Message}");
            return 1;
        }
    }
}

/// <summary>The smallest proof that libtorch works here: a Conv3d forward and backward.</summary>
internal static class TorchCheck
{
    /// <summary>Runs a 3×3×3 Conv3d on a random clip, back-propagates, and returns the weight-gradient norm.</summary>
    public static double Conv3dRoundTrip(torch.Device device)
    {
        using var scope = torch.NewDisposeScope();
        using var conv = torch.nn.Conv3d(3, 4, kernel_size: 3, padding: 1).to(device);
        var input = torch.rand([2, 3, 4, 8, 8], device: device);
        var output = conv.forward(input);
        output.square().mean().backward();
        return conv.weight!.grad!.norm().item<float>();
    }
}
