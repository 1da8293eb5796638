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

/// <summary>
/// ONNX Runtime refused or failed to run a batch that passed validation. The message is safe for a client;
/// ONNX Runtime's own words are in <see cref="CvrlException.Detail"/>. Kind: <see cref="ErrorKind.InvalidArgument"/>
/// when ONNX Runtime says the input does not fit the model, else <see cref="ErrorKind.NotReady"/> (the
/// model cannot serve this now; there is no kind for a server fault).
/// </summary>
public sealed class InferenceFailedException(string model, bool inputRejected, string? detail = null, Exception? inner = null)
    : CvrlException(inputRejected ? ErrorKind.InvalidArgument : ErrorKind.NotReady,
        inputRejected ? $"Model '{model}' does not accept this input." : $"Model '{model}' failed to run this batch.", detail, inner)
{
    public string Model { get; } = model;
}
