namespace CvrlServe.Core.Inference;

/// <summary>The inference queue is full: try again later (the API answers 429/503 with Retry-After).</summary>
public sealed class OverloadedException(int queued, int capacity, TimeSpan retryAfter)
    : Exception($"The encoder is busy: {queued} clips are waiting (capacity {capacity}). Retry in {retryAfter.TotalSeconds:F0} s.")
{
    public TimeSpan RetryAfter { get; } = retryAfter;
}

/// <summary>A model folder could not be loaded: missing or invalid files, or an ONNX file whose hash does not match its manifest.</summary>
public sealed class ModelLoadException(string model, string message, Exception? inner = null)
    : Exception($"Model '{model}': {message}", inner)
{
    public string Model { get; } = model;
}

/// <summary>No model of that name is loaded.</summary>
public sealed class ModelNotFoundException(string model, IEnumerable<string> known)
    : Exception($"No model named '{model}'. Loaded: {string.Join(", ", known)}.")
{
    public string Model { get; } = model;
}
