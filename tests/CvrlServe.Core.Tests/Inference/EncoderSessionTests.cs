using CvrlServe.Core.Inference;
namespace CvrlServe.Core.Tests.Inference;

public sealed class EncoderSessionTests : IDisposable
{
    private readonly string _folder = Directory.CreateTempSubdirectory("cvrl-sessions-").FullName;

    public void Dispose() => Directory.Delete(_folder, recursive: true);

    [Fact]
    public void CudaOptions_ReachTheSessionOptionsThroughTheProviderSeam()
    {
        var settings = new EncoderSessionOptions { CudaDeviceId = 1, CudaMemoryLimitBytes = 2L << 30, CudaConvAlgorithmSearch = ConvAlgorithmSearch.Exhaustive };
        IReadOnlyDictionary<string, string>? seen = null;
        using var options = ExecutionProviders.Create(settings, out string provider, out string? reason, (_, cuda) => seen = cuda);

        Assert.Equal(ExecutionProviders.Cuda, provider);
        Assert.Null(reason);
        Assert.Equal("1", seen!["device_id"]);
        Assert.Equal("kSameAsRequested", seen["arena_extend_strategy"]);
        Assert.Equal("2147483648", seen["gpu_mem_limit"]);
        Assert.Equal("EXHAUSTIVE", seen["cudnn_conv_algo_search"]);
    }

    [Fact]
    public void Create_CudaMissingFromTheCpuPackage_FallsBackToCpuAndSaysWhy()
    {
        // The real CUDA path on this machine: the CPU package has no CUDA entry points.
        using var options = ExecutionProviders.Create(new EncoderSessionOptions(), out string provider, out string? reason);
        Assert.Equal(ExecutionProviders.Cpu, provider);
        Assert.False(string.IsNullOrEmpty(reason));
    }

    [Fact]
    public void Create_CudaLibrariesFailToLoad_FallsBackToCpu()
    {
        using var options = ExecutionProviders.Create(new EncoderSessionOptions(), out string provider, out string? reason,
            (_, _) => throw new DllNotFoundException("Failed to load shared library libcudart.so.13"));
        Assert.Equal(ExecutionProviders.Cpu, provider);
        Assert.Contains("libcudart", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TinyModel_RunsAndReportsProvider()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions());
        Assert.Equal(ExecutionProviders.Cpu, session.Provider);
        Assert.Equal(64, session.Dimension);
        var output = new float[2 * 64];
        session.Run(TinyModels.RandomClips(2, [3, 4, 32, 32], 1), 2, [3, 4, 32, 32], output);
        Assert.Contains(output, v => v != 0);
    }

    [Fact]
    public void Load_OnnxFileNotMatchingManifestHash_Refused()
    {
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, "mixed");
        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName), Path.Combine(model, EncoderManifest.ModelFileName), overwrite: true);
        var error = Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, new EncoderSessionOptions()));
        Assert.Contains("SHA-256", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_TruncatedOnnxWithItsOwnHash_ReportedNotThrownAsSomethingElse()
    {
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, "cut");
        string onnx = Path.Combine(model, EncoderManifest.ModelFileName);
        File.WriteAllBytes(onnx, File.ReadAllBytes(onnx)[..5000]);
        string manifest = Path.Combine(model, EncoderManifest.FileName);
        File.WriteAllText(manifest, File.ReadAllText(manifest).Replace(EncoderManifest.Load(TinyModels.Seed1).EncoderSha256, EncoderManifest.Sha256Of(onnx), StringComparison.Ordinal));
        Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, new EncoderSessionOptions()));
    }
}
