using System.Diagnostics;
using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Tests.Inference;

public sealed class EncoderSessionTests : IDisposable
{
    private static readonly EncoderSessionOptions Cpu = new() { Provider = ProviderPreference.Cpu };
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
    public void Create_CudaPreferred_ReportsCudaExactlyWhenThereIsNoFallbackReason()
    {
        // The real appender: CUDA loads on a GPU machine with the GPU package, and does not elsewhere.
        using var options = ExecutionProviders.Create(new EncoderSessionOptions(), out string provider, out string? reason);
        Assert.Contains(provider, new[] { ExecutionProviders.Cuda, ExecutionProviders.Cpu });
        Assert.Equal(provider == ExecutionProviders.Cpu, !string.IsNullOrEmpty(reason));
    }

    [Theory]
    [InlineData(typeof(DllNotFoundException))]
    [InlineData(typeof(EntryPointNotFoundException))]
    public void Create_CudaFailsToLoad_FallsBackToCpuAndSaysWhy(Type failure)
    {
        using var options = ExecutionProviders.Create(new EncoderSessionOptions(), out string provider, out string? reason,
            (_, _) => throw (Exception)Activator.CreateInstance(failure, "Failed to load shared library libcudart.so.13")!);
        Assert.Equal(ExecutionProviders.Cpu, provider);
        Assert.Contains("libcudart", reason, StringComparison.Ordinal);
    }

    [Fact]
    public void Create_CpuPreferred_NeverTriesCuda()
    {
        bool tried = false;
        using var options = ExecutionProviders.Create(Cpu, out string provider, out string? reason, (_, _) => tried = true);
        Assert.Equal((ExecutionProviders.Cpu, (string?)null, false), (provider, reason, tried));
    }

    [Fact]
    public void Load_CudaFailsToLoad_SessionRunsOnCpuAndSaysWhy()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions(),
            (_, _) => throw new DllNotFoundException("Failed to load shared library libcudnn.so.9"));
        Assert.Equal(ExecutionProviders.Cpu, session.Provider);
        Assert.Contains("libcudnn", session.FallbackReason, StringComparison.Ordinal);
        Assert.Equal(64, session.Dimension);
        var output = new float[2 * 64];
        session.Run(TinyModels.RandomClips(2, [3, 4, 32, 32], 1), 2, [3, 4, 32, 32], output);
        Assert.Contains(output, v => v != 0);
    }

    [Fact]
    public void Load_CudaPreferred_ProviderAndFallbackReasonAgree()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, new EncoderSessionOptions());
        Assert.Equal(session.Provider == ExecutionProviders.Cpu, session.FallbackReason is not null);
    }

    [Fact]
    public void Load_ManifestDimensionNotTheModelsOutput_RefusedAtLoad()
    {
        // tiny-seed1 writes 64 values per clip; a manifest that says 65 would leave a zero in every
        // embedding of a batch's last clip, or fail every batch.
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, "wrong-dimension");
        string manifest = Path.Combine(model, EncoderManifest.FileName);
        File.WriteAllText(manifest, File.ReadAllText(manifest).Replace("\"dimension\": 64", "\"dimension\": 65", StringComparison.Ordinal));
        Assert.Equal(65, EncoderManifest.Load(model).Output.Dimension);

        var error = Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, Cpu));
        Assert.Contains("[N, 65]", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public void Load_OnnxFileNotMatchingManifestHash_Refused()
    {
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, "mixed");
        File.Copy(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName), Path.Combine(model, EncoderManifest.ModelFileName), overwrite: true);
        var error = Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, Cpu));
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
        Assert.Throws<ModelLoadException>(() => EncoderSession.Load(model, Cpu));
    }

    [Fact]
    public async Task Load_OnnxFileReplacedAfterItWasHashed_RunsTheBytesThatMatchedTheManifest()
    {
        if (!OperatingSystem.IsLinux())
        {
            return;
        }

        // encoder.onnx as a pipe: the first open reads the file the manifest describes, a second open a
        // replacement. Reading the file twice (hash, then load) would load the replacement under the old identity.
        // The replacement is offered only once the first reader has closed the pipe (no descriptor of this
        // process points at it), so the two versions never run together.
        string model = TinyModels.CopyInto(_folder, TinyModels.Seed1, "swapped");
        string onnx = Path.Combine(model, EncoderManifest.ModelFileName);
        File.Delete(onnx);
        using (var mkfifo = Process.Start("mkfifo", onnx))
        {
            await mkfifo.WaitForExitAsync();
            Assert.Equal(0, mkfifo.ExitCode);
        }

        byte[][] versions = [File.ReadAllBytes(Path.Combine(TinyModels.Seed1, EncoderManifest.ModelFileName)), File.ReadAllBytes(Path.Combine(TinyModels.Seed2, EncoderManifest.ModelFileName))];
        var writer = Task.Factory.StartNew(() =>
        {
            foreach (byte[] bytes in versions)
            {
                SpinWait.SpinUntil(() => !IsOpenHere(onnx), Patience);
                using var pipe = new FileStream(onnx, FileMode.Open, FileAccess.Write);
                pipe.Write(bytes);
            }
        }, CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
        try
        {
            using var session = EncoderSession.Load(model, Cpu);
            using var reference = EncoderSession.Load(TinyModels.Seed1, Cpu);
            var clip = TinyModels.RandomClips(1, [3, 4, 32, 32], 5);
            var (served, expected) = (new float[64], new float[64]);
            session.Run(clip, 1, [3, 4, 32, 32], served);
            reference.Run(clip, 1, [3, 4, 32, 32], expected);
            Assert.Equal(expected, served);
        }
        finally
        {
            if (!writer.IsCompleted)
            {
                await File.ReadAllBytesAsync(onnx); // takes the second version, so the writer ends
            }

            await writer.WaitAsync(Patience);
        }
    }

    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(20);

    private static bool IsOpenHere(string path) => new DirectoryInfo("/proc/self/fd").EnumerateFileSystemInfos().Any(fd =>
    {
        try
        {
            return fd.LinkTarget?.EndsWith(Path.Combine(Path.GetFileName(Path.GetDirectoryName(path)!), Path.GetFileName(path)), StringComparison.Ordinal) == true;
        }
        catch (IOException)
        {
            return false; // closed meanwhile
        }
    });

    [Fact]
    public void Run_InputTheModelRejects_TypedErrorWithOnnxRuntimesWordsOnlyInTheDetail()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, Cpu);
        var error = Assert.Throws<InferenceFailedException>(() => session.Run(new float[2 * 4 * 32 * 32], 1, [2, 4, 32, 32], new float[64]));
        Assert.Equal(ErrorKind.InvalidArgument, error.Kind);
        Assert.DoesNotContain("ErrorCode", error.Message, StringComparison.Ordinal);
        Assert.Contains("ErrorCode", error.Detail, StringComparison.Ordinal);
    }

    [Fact]
    public void Run_BuffersTooSmallForTheBatch_InvalidRequest()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, Cpu);
        Assert.Throws<InvalidRequestException>(() => session.Run(new float[3 * 4 * 32 * 32], 2, [3, 4, 32, 32], new float[128]));
        Assert.Throws<InvalidRequestException>(() => session.Run(new float[3 * 4 * 32 * 32], 1, [3, 4, 32, 32], new float[63]));
    }

    [Fact]
    public void Run_TokenAlreadyCancelled_OnnxRuntimeRefusesThroughTheTerminateFlag()
    {
        using var session = EncoderSession.Load(TinyModels.Seed1, Cpu);
        using var cancel = new CancellationTokenSource();
        cancel.Cancel();
        var error = Assert.ThrowsAny<OperationCanceledException>(() => session.Run(new float[3 * 4 * 32 * 32], 1, [3, 4, 32, 32], new float[64], cancellationToken: cancel.Token));
        Assert.IsType<Microsoft.ML.OnnxRuntime.OnnxRuntimeException>(error.InnerException);
        Assert.Equal(cancel.Token, error.CancellationToken);
    }
}
