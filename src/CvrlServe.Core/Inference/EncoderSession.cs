using System.Security.Cryptography;
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

    /// <summary>The model's name: its folder's name.</summary>
    public string Name => Path.GetFileName(Folder);

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
        byte[] onnx;
        try
        {
            // Read once: the bytes hashed are the bytes loaded, whatever happens to the file meanwhile.
            onnx = File.ReadAllBytes(model);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ModelLoadException(name, $"{EncoderManifest.ModelFileName} is missing.", e.Message, e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new ModelLoadException(name, $"{EncoderManifest.ModelFileName} could not be read.", e.Message, e);
        }

        string sha = Convert.ToHexStringLower(SHA256.HashData(onnx));
        if (!string.Equals(sha, manifest.EncoderSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new ModelLoadException(name, $"{EncoderManifest.ModelFileName} has SHA-256 {sha}, but the manifest says {manifest.EncoderSha256}: a partial copy or a mismatched pair.");
        }

        using var sessionOptions = ExecutionProviders.Create(options, out string provider, out string? fallback, appendCuda);
        InferenceSession session;
        try
        {
            session = new InferenceSession(onnx, sessionOptions);
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

        // The output must be [N, D] with the manifest's D (or a dynamic D): a model that writes fewer values
        // would leave zeros in the embeddings of later clips, one that writes more would fail every batch.
        var dims = session.OutputMetadata[manifest.Output.Name].Dimensions;
        if (dims.Length != 2 || (dims[1] > 0 && dims[1] != manifest.Output.Dimension))
        {
            session.Dispose();
            throw new ModelLoadException(name, $"the model's output is [{string.Join(", ", dims)}], but the manifest says [N, {manifest.Output.Dimension}].");
        }

        return new EncoderSession(Path.GetFullPath(folder), manifest, session, provider, fallback);
    }

    /// <summary>
    /// Runs <paramref name="count"/> clips stored back to back in <paramref name="input"/> (each of
    /// <paramref name="clipShape"/> = C, T, H, W) and writes [count, D] embeddings into <paramref name="output"/>.
    /// Cancelling <paramref name="cancellationToken"/> or passing <paramref name="timeout"/> stops a running
    /// batch through ONNX Runtime's terminate flag: that throws <see cref="OperationCanceledException"/> or
    /// <see cref="DeadlineExceededException"/>. A run that finishes before ONNX Runtime sees the flag returns
    /// normally. Other ONNX Runtime failures throw <see cref="InferenceFailedException"/>; sizes that do not
    /// add up throw <see cref="InvalidRequestException"/>.
    /// </summary>
    public void Run(Memory<float> input, int count, int[] clipShape, Span<float> output, TimeSpan? timeout = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(clipShape);
        if (clipShape.Length != 4 || count < 1 || clipShape.Any(d => d < 1))
        {
            throw new InvalidRequestException("A batch needs at least one clip and a clip shape of four positive sizes (C, T, H, W).");
        }

        long[] shape = [count, clipShape[0], clipShape[1], clipShape[2], clipShape[3]];
        long elements = shape.Aggregate(1L, (a, b) => a > input.Length ? a : a * b);
        if (elements > input.Length || (long)count * Dimension > output.Length)
        {
            throw new InvalidRequestException($"A batch of {count} clips of {string.Join('x', clipShape)} does not fit the {input.Length} input and {output.Length} output values given.");
        }

        using var runOptions = new RunOptions();
        using var deadline = timeout is { } limit && limit != Timeout.InfiniteTimeSpan ? new CancellationTokenSource(limit) : null;
        // Registrations end (waiting for a running callback) before the run options are disposed. A token
        // cancelled already sets the flag here, and ONNX Runtime refuses to start.
        using var onCancel = cancellationToken.UnsafeRegister(static o => ((RunOptions)o!).Terminate = true, runOptions);
        using var onDeadline = deadline?.Token.UnsafeRegister(static o => ((RunOptions)o!).Terminate = true, runOptions) ?? default;
        try
        {
            // The OrtValue borrows the managed buffer: no copy, and it must not outlive this call.
            using var value = OrtValue.CreateTensorValueFromMemory(OrtMemoryInfo.DefaultInstance, input[..(int)elements], shape);
            using var outputs = _session.Run(runOptions, [Manifest.Input.Name], [value], [Manifest.Output.Name]);
            var values = outputs[0].GetTensorDataAsSpan<float>();
            if (values.Length != count * Dimension)
            {
                throw new InferenceFailedException(Name, inputRejected: false, $"the model wrote {values.Length} values for {count} clips of dimension {Dimension}");
            }

            values.CopyTo(output);
        }
        catch (OnnxRuntimeException e) when (runOptions.Terminate)
        {
            if (cancellationToken.IsCancellationRequested)
            {
                throw new OperationCanceledException("The inference was cancelled.", e, cancellationToken);
            }

            throw new DeadlineExceededException("Inference", timeout!.Value, e.Message);
        }
        catch (OnnxRuntimeException e)
        {
            // The C# API keeps the status code private; its message starts with it.
            throw new InferenceFailedException(Name, e.Message.StartsWith("[ErrorCode:InvalidArgument]", StringComparison.Ordinal), e.Message, e);
        }
    }

    public void Dispose() => _session.Dispose();
}
