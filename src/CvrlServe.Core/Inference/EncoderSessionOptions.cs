namespace CvrlServe.Core.Inference;

/// <summary>Which execution provider a session should try first.</summary>
public enum ProviderPreference
{
    /// <summary>CUDA when it loads, else CPU.</summary>
    Cuda,

    /// <summary>CPU only.</summary>
    Cpu,
}

/// <summary>cuDNN convolution algorithm search (ONNX Runtime's <c>cudnn_conv_algo_search</c>).</summary>
public enum ConvAlgorithmSearch
{
    Exhaustive,
    Heuristic,
    Default,
}

/// <summary>How encoder sessions run: provider, GPU settings, CPU threads and micro-batching.</summary>
public sealed class EncoderSessionOptions
{
    public ProviderPreference Provider { get; set; } = ProviderPreference.Cuda;

    public int CudaDeviceId { get; set; }

    /// <summary>CUDA memory arena limit in bytes (<c>gpu_mem_limit</c>); 0 leaves ONNX Runtime's default.</summary>
    public long CudaMemoryLimitBytes { get; set; }

    /// <summary>Grow the CUDA arena by what is requested (<c>kSameAsRequested</c>) rather than by powers of two.</summary>
    public bool CudaArenaSameAsRequested { get; set; } = true;

    public ConvAlgorithmSearch CudaConvAlgorithmSearch { get; set; } = ConvAlgorithmSearch.Heuristic;

    /// <summary>
    /// Threads for one inference on CPU. Default: all cores but one from 4 cores up, leaving that one to
    /// ffmpeg decoding the next requests; on smaller machines all cores (on 2 cores, 1 thread measured
    /// 28 % fewer videos/s than 2 for an inference-bound R3D-18: see tools/EmbedBench). Lower it when
    /// decoding dominates (large videos, small models).
    /// </summary>
    public int IntraOpThreads { get; set; } = Environment.ProcessorCount >= 4 ? Environment.ProcessorCount - 1 : Environment.ProcessorCount;

    /// <summary>Most clips run together in one batch.</summary>
    public int MaxBatchSize { get; set; } = 8;

    /// <summary>How long the first clip of a batch waits for others to join it.</summary>
    public TimeSpan MaxBatchWait { get; set; } = TimeSpan.FromMilliseconds(10);

    /// <summary>Clips that may wait for inference before new work is refused as overloaded.</summary>
    public int QueueCapacity { get; set; } = 256;

    /// <summary>
    /// Bytes of clips (4 per float) that may wait for inference before new work is refused as overloaded;
    /// a single request larger than this is refused as over the limit. The default, like
    /// <see cref="Video.VideoLimits.MaxDecodedBytes"/>'s, holds about 440 clips of 3×16×112×112.
    /// </summary>
    public long QueueCapacityBytes { get; set; } = 1L << 30;

    /// <summary>
    /// How long a request may take from submission to its embeddings, queueing included; past it the
    /// request fails as timed out and a batch that only it still waits for is stopped.
    /// <see cref="Timeout.InfiniteTimeSpan"/> for none.
    /// </summary>
    public TimeSpan InferenceTimeout { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>Run every batch size once before the model is reported ready.</summary>
    public bool WarmUp { get; set; } = true;

    /// <summary>Throws <see cref="InvalidRequestException"/> naming the first setting out of range.</summary>
    public void Validate()
    {
        string? wrong = this switch
        {
            { MaxBatchSize: < 1 } => $"{nameof(MaxBatchSize)} must be at least 1.",
            { QueueCapacity: < 1 } => $"{nameof(QueueCapacity)} must be at least 1.",
            { QueueCapacityBytes: < 1 } => $"{nameof(QueueCapacityBytes)} must be at least 1.",
            { IntraOpThreads: < 0 } => $"{nameof(IntraOpThreads)} must not be negative.",
            _ when MaxBatchWait < TimeSpan.Zero => $"{nameof(MaxBatchWait)} must not be negative.",
            _ when InferenceTimeout <= TimeSpan.Zero && InferenceTimeout != Timeout.InfiniteTimeSpan => $"{nameof(InferenceTimeout)} must be positive or infinite.",
            _ => null,
        };
        if (wrong is not null)
        {
            throw new InvalidRequestException($"Invalid encoder session options: {wrong}");
        }
    }
}
