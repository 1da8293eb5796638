namespace CvrlServe.Core.Inference;

/// <summary>A model folder could not be loaded: missing or invalid files, or an ONNX file whose hash does not match its manifest.</summary>
public sealed class ModelLoadException(string model, string message, string? detail = null, Exception? inner = null)
    : CvrlException(ErrorKind.NotReady, $"Model '{model}' could not be loaded: {message}", detail, inner)
{
    public string Model { get; } = model;
}

/// <summary>No model of that name exists.</summary>
public sealed class ModelNotFoundException(string model, IEnumerable<string> known)
    : CvrlException(ErrorKind.NotFound, $"No model named '{model}'. Models: {Known(known)}.")
{
    public string Model { get; } = model;

    private static string Known(IEnumerable<string> known) => known.Any() ? string.Join(", ", known) : "none";
}

/// <summary>The model exists but cannot serve now: still loading, failed to load, or being replaced.</summary>
public sealed class ModelNotReadyException(string model, string reason, string? detail = null)
    : CvrlException(ErrorKind.NotReady, $"Model '{model}' is not ready: {reason}", detail)
{
    public string Model { get; } = model;
}
