using System.Globalization;
using Microsoft.ML.OnnxRuntime;

namespace CvrlServe.Core.Inference;

/// <summary>
/// Chooses the execution provider. ONNX Runtime does not fall back from CUDA by itself in C#:
/// appending CUDA throws <see cref="OnnxRuntimeException"/> with the GPU package but no CUDA libraries,
/// and <see cref="EntryPointNotFoundException"/> with the CPU package (engineering notes). Both mean
/// "run on CPU", and the provider actually used is reported.
/// </summary>
public static class ExecutionProviders
{
    public const string Cuda = "CUDAExecutionProvider";
    public const string Cpu = "CPUExecutionProvider";

    /// <summary>The seam for tests: appends CUDA with these provider options (the real one calls ONNX Runtime).</summary>
    public delegate void CudaAppender(SessionOptions options, IReadOnlyDictionary<string, string> cudaOptions);

    /// <summary>The CUDA provider options these settings mean, as ONNX Runtime's option names.</summary>
    public static Dictionary<string, string> CudaOptions(EncoderSessionOptions settings)
    {
        ArgumentNullException.ThrowIfNull(settings);
        var options = new Dictionary<string, string>
        {
            ["device_id"] = settings.CudaDeviceId.ToString(CultureInfo.InvariantCulture),
            ["arena_extend_strategy"] = settings.CudaArenaSameAsRequested ? "kSameAsRequested" : "kNextPowerOfTwo",
            ["cudnn_conv_algo_search"] = settings.CudaConvAlgorithmSearch switch
            {
                ConvAlgorithmSearch.Exhaustive => "EXHAUSTIVE",
                ConvAlgorithmSearch.Heuristic => "HEURISTIC",
                _ => "DEFAULT",
            },
        };
        if (settings.CudaMemoryLimitBytes > 0)
        {
            options["gpu_mem_limit"] = settings.CudaMemoryLimitBytes.ToString(CultureInfo.InvariantCulture);
        }

        return options;
    }

    /// <summary>The real appender: ONNX Runtime's CUDA provider with <paramref name="cudaOptions"/>.</summary>
    public static void AppendCuda(SessionOptions options, IReadOnlyDictionary<string, string> cudaOptions)
    {
        ArgumentNullException.ThrowIfNull(options);
        using var cuda = new OrtCUDAProviderOptions();
        cuda.UpdateOptions(new Dictionary<string, string>(cudaOptions));
        options.AppendExecutionProvider_CUDA(cuda);
    }

    /// <summary>
    /// Session options for <paramref name="settings"/>: CUDA first when preferred, CPU when CUDA cannot
    /// load. Returns the provider that will run, and why CUDA was not used when it was wanted.
    /// </summary>
    public static SessionOptions Create(EncoderSessionOptions settings, out string provider, out string? fallbackReason, CudaAppender? appendCuda = null)
    {
        ArgumentNullException.ThrowIfNull(settings);
        fallbackReason = null;
        var options = CpuOptions(settings);
        if (settings.Provider == ProviderPreference.Cuda)
        {
            try
            {
                (appendCuda ?? AppendCuda)(options, CudaOptions(settings));
                provider = Cuda;
                return options;
            }
            catch (Exception e) when (e is OnnxRuntimeException or EntryPointNotFoundException or DllNotFoundException)
            {
                fallbackReason = e.Message;
                options.Dispose();
                options = CpuOptions(settings);
            }
        }

        provider = Cpu;
        return options;
    }

    private static SessionOptions CpuOptions(EncoderSessionOptions settings) => new()
    {
        IntraOpNumThreads = settings.IntraOpThreads,
        InterOpNumThreads = 1,
        ExecutionMode = ExecutionMode.ORT_SEQUENTIAL,
        GraphOptimizationLevel = GraphOptimizationLevel.ORT_ENABLE_ALL,
    };
}
