using System.Diagnostics;
using System.Runtime.InteropServices;
using CvrlServe.Core.Inference;
using CvrlServe.Training.Export;
using CvrlServe.Training.Tests.Commands;
using Microsoft.ML.OnnxRuntime;
using Xunit.Abstractions;

namespace CvrlServe.Training.Tests.Export;

public sealed class TorchvisionImportTests(ITestOutputHelper output) : IDisposable
{
    /// <summary>Debian's own python3 (python3-torchvision is installed for it, not for pyenv's).</summary>
    private const string Python = "/usr/bin/python3";

    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-import-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [SkippableFact]
    public void Import_TorchvisionStateDict_OurOnnxReproducesTorchvision()
    {
        Skip.IfNot(PythonHas("torchvision"), "Debian's python3-torchvision is not installed (tools/test.sh installs it).");
        long[] shape = [2, 3, 8, 64, 64];
        string script = Path.Combine(AppContext.BaseDirectory, "Export", "torchvision_r3d18.py");
        output.WriteLine(RunPython($"\"{script}\" \"{_folder}\" {string.Join(',', shape)}"));

        string model = Path.Combine(_folder, "imported");
        var (code, stdout, stderr) = ModelCommandsTests.Run("import", "--arch", "torchvision-r3d18", "--weights", Path.Combine(_folder, "r3d18.pth"), "--out", model);
        Assert.True(code == 0, stderr);
        output.WriteLine(stdout);

        var manifest = EncoderManifest.Load(model);
        Assert.Equal("imported", manifest.Provenance.Kind);
        Assert.Equal(TorchvisionImport.Mean, manifest.Values.Mean);
        Assert.Equal(1, manifest.View.Stride);

        float[] input = ReadFloats("input.f32");
        float[] expected = ReadFloats("features.f32");
        using var session = new InferenceSession(Path.Combine(model, EncoderManifest.ModelFileName));
        using var value = OrtValue.CreateTensorValueFromMemory(input, shape);
        using var runOptions = new RunOptions();
        using var outputs = session.Run(runOptions, [manifest.Input.Name], [value], [manifest.Output.Name]);
        float[] actual = outputs[0].GetTensorDataAsSpan<float>().ToArray();

        var parity = Parity.Compare(expected, actual, (int)shape[0]);
        output.WriteLine($"torchvision vs our ONNX: {parity}");
        Assert.Equal(expected.Length, actual.Length);
        Assert.True(parity.MaxAbsDifference <= 1e-4, parity.ToString());
    }

    [SkippableFact]
    public void OnnxChecker_ExportedModel_PassesFullCheckAndShapeInference()
    {
        Skip.IfNot(PythonHas("onnx"), "Debian's python3-onnx is not installed (tools/test.sh installs it).");
        string model = Path.Combine(_folder, "checked");
        Assert.Equal(0, ModelCommandsTests.Run("init", "--arch", "r3d50", "--width", "0.25", "--out", model).Code);
        string checker = Path.GetFullPath(Path.Combine(AppContext.BaseDirectory, "Export", "onnx_check.py"));
        string report = RunPython($"\"{checker}\" \"{Path.Combine(model, EncoderManifest.ModelFileName)}\"");
        output.WriteLine(report);
        Assert.Contains(": ok (", report, StringComparison.Ordinal);
    }

    [Fact]
    public void MapKey_TorchvisionSequentialNames_BecomeOurs()
    {
        Assert.Equal("layer2.0.bn1.running_var", TorchvisionImport.MapKey("layer2.0.conv1.1.running_var"));
        Assert.Equal("layer4.1.conv2.weight", TorchvisionImport.MapKey("layer4.1.conv2.0.weight"));
        Assert.Equal("layer3.0.downsample.1.bias", TorchvisionImport.MapKey("layer3.0.downsample.1.bias"));
        Assert.Equal("stem.0.weight", TorchvisionImport.MapKey("stem.0.weight"));
        Assert.Null(TorchvisionImport.MapKey("fc.weight"));
    }

    [Fact]
    public void Import_NotAStateDict_ClearError()
    {
        string bogus = Path.Combine(_folder, "bogus.pth");
        File.WriteAllText(bogus, "not a pickle");
        var (code, _, stderr) = ModelCommandsTests.Run("import", "--arch", "torchvision-r3d18", "--weights", bogus, "--out", Path.Combine(_folder, "m"));
        Assert.Equal(1, code);
        Assert.Contains("is not a PyTorch state dict", stderr, StringComparison.Ordinal);
        Assert.False(Directory.Exists(Path.Combine(_folder, "m")));
    }

    private float[] ReadFloats(string name) => MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(Path.Combine(_folder, name))).ToArray();

    private static bool PythonHas(string module)
    {
        if (!File.Exists(Python))
        {
            return false;
        }

        try
        {
            RunPython($"-c \"import {module}\"");
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    private static string RunPython(string arguments)
    {
        using var process = Process.Start(new ProcessStartInfo(Python, arguments)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        })!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        process.WaitForExit();
        return process.ExitCode == 0 ? stdout : throw new InvalidOperationException($"python3 {arguments} failed: {stderr.Result}");
    }
}
