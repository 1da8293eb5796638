using Microsoft.ML.OnnxRuntime;

namespace CvrlServe.Core.Inference;

/// <summary>
/// One ONNX Runtime session for one model folder, configured from its manifest. <see cref="Run"/> is
/// thread-safe (ONNX Runtime sessions are). Loading checks the ONNX file against the manifest's SHA-256,
/// so a half-written or swapped file is refused rather than served under the wrong identity.
/// </summary>
public sealed class EncoderSession : IDisposable
{
    private readonly InferenceSession _session;

    private EncoderSession(string folder, EncoderManifest manifest, InferenceSession session, string provider, string? fallbackReason)
    {
        Folder = folder;
        Manifest = manifest;
        _session = session;
        Provider = provider;
        FallbackReason = fallbackReason;
    }

    public string Folder { get; }

    public EncoderManifest Manifest { get; }

    /// <summary>The execution provider running this session (CUDA or CPU).</summary>
    public string Provider { get; }

    /// <summary>Why CUDA was not used although preferred; null when it was, or was not wanted.</summary>
    public string? FallbackReason { get; }

    public int Dimension => Manifest.Output.Dimension;

    public static EncoderSession Load(string folder, EncoderSessionOptions options, ExecutionProviders.CudaAppender? appendCuda = null)
    {
        ArgumentNullException.ThrowIfNull(options);
        string name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/'));
        EncoderManifest manifest;
        try
        {
            manifest = EncoderManifest.Load(folder);
        }
        catch (Exception e) when (e is IOException or InvalidDataException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(name, "its manifest is missing or invalid.", e.Message, e);
        }

        string model = Path.Combine(folder, EncoderManifest.ModelFileName);
        if (!File.Exists(model))
        {
            throw new ModelLoadException(name, $"{EncoderManifest.ModelFileName} is missing.");
        }

        string sha = EncoderManifest.Sha256Of(model);
        if (!string.Equals(sha, manifest.EncoderSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelLoadException(name, $"{EncoderManifest.ModelFileName} has SHA-256 {sha}, but the manifest says {manifest.EncoderSha256}: a partial copy or a mismatched pair.");
        }

        using var sessionOptions = ExecutionProviders.Create(options, out string provider, out string? fallback, appendCuda);
        InferenceSession session;
        try
        {
            session = new InferenceSession(model, sessionOptions);
        }
        catch (OnnxRuntimeException e)
        {
            throw new ModelLoadException(name, "ONNX Runtime could not load encoder.onnx.", e.Message, e);
        }

        if (!session.InputNames.Contains(manifest.Input.Name) || !session.OutputNames.Contains(manifest.Output.Name))
        {
            session.Dispose();
            throw new ModelLoadException(name, $"the model's input/output ({string.Join(",", session.InputNames)} → {string.Join(",", session.OutputNames)}) do not match the manifest's ({manifest.Input.Name} → {manifest.Output.Name}).");
        }

        return new EncoderSession(Path.GetFullPath(folder), manifest, session, provider, fallback);
    }

    /// <summary>
    /// Runs <paramref name="count"/> clips stored back to back in <paramref name="input"/> (each of
    /// <paramref name="clipShape"/> = C, T, H, W) and writes [count, D] embeddings into <paramref name="output"/>.
    /// </summary>
    public void Run(Memory<float> input, int count, int[] clipShape, Span<float> output)
    {
        ArgumentNullException.ThrowIfNull(clipShape);
        long[] shape = [count, clipShape[0], clipShape[1], clipShape[2], clipShape[3]];
        long elements = shape.Aggregate(1L, (a, b) => a * b);
        // The OrtValue borrows the managed buffer: no copy, and it must not outlive this call.
        using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input[..(int)elements], shape);
        using var runOptions = new RunOptions();
        using var outputs = _session.Run(runOptions, [Manifest.Input.Name], [value], [Manifest.Output.Name]);
        outputs[0].GetTensorDataAsSpan<float>().CopyTo(output);
    }

    public void Dispose() => _session.Dispose();
}
