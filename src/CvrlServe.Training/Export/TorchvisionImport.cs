using System.Collections;
using CvrlServe.Training.Modules;
using TorchSharp.PyBridge;
using static TorchSharp.torch;

namespace CvrlServe.Training.Export;

/// <summary>
/// Loads a PyTorch state dict of torchvision's <c>r3d_18</c> (saved with <c>torch.save(model.state_dict())</c>)
/// into our <see cref="R3dArchitecture.TorchvisionR3d18"/> encoder. torchvision wraps each block conv and
/// its BN in a Sequential (<c>conv1.0</c>, <c>conv1.1</c>); ours names them <c>conv1</c>, <c>bn1</c>. The
/// classifier (<c>fc</c>) is not part of the encoder and is left out.
/// </summary>
public static class TorchvisionImport
{
    /// <summary>torchvision's video normalization for its Kinetics-400 weights (RGB, after /255).</summary>
    public static float[] Mean { get; } = [0.43216f, 0.394666f, 0.37645f];

    public static float[] Std { get; } = [0.22803f, 0.22145f, 0.216989f];

    public static R3dEncoder Load(string weightsPath)
    {
        Hashtable source;
        try
        {
            source = PyTorchUnpickler.UnpickleStateDict(weightsPath);
        }
        catch (Exception e) when (e is not FileNotFoundException and not OutOfMemoryException)
        {
            throw new InvalidDataException($"'{weightsPath}' is not a PyTorch state dict: {e.Message}", e);
        }

        var encoder = new R3dEncoder(R3dArchitecture.TorchvisionR3d18);
        try
        {
            Fill(encoder, source, weightsPath);
        }
        catch
        {
            encoder.Dispose();
            throw;
        }
        finally
        {
            foreach (var value in source.Values)
            {
                (value as IDisposable)?.Dispose();
            }
        }

        return encoder;
    }

    /// <summary>Our key for a torchvision key, or null for keys outside the encoder (the classifier).</summary>
    public static string? MapKey(string key)
    {
        if (key.StartsWith("fc.", StringComparison.Ordinal))
        {
            return null;
        }

        return key
            .Replace(".conv1.0.", ".conv1.", StringComparison.Ordinal)
            .Replace(".conv1.1.", ".bn1.", StringComparison.Ordinal)
            .Replace(".conv2.0.", ".conv2.", StringComparison.Ordinal)
            .Replace(".conv2.1.", ".bn2.", StringComparison.Ordinal);
    }

    private static void Fill(R3dEncoder encoder, Hashtable source, string weightsPath)
    {
        var target = encoder.state_dict();
        var filled = new HashSet<string>(StringComparer.Ordinal);
        using var noGrad = no_grad();
        foreach (DictionaryEntry entry in source)
        {
            string key = (string)entry.Key;
            string? ours = MapKey(key);
            if (ours is null)
            {
                continue;
            }

            if (!target.TryGetValue(ours, out var destination) || entry.Value is not Tensor tensor)
            {
                throw new InvalidDataException($"'{weightsPath}' has '{key}', which torchvision's r3d_18 does not.");
            }

            if (!destination.shape.SequenceEqual(tensor.shape))
            {
                throw new InvalidDataException($"'{key}' is [{string.Join(',', tensor.shape)}]; r3d_18 needs [{string.Join(',', destination.shape)}].");
            }

            destination.copy_(tensor.to_type(destination.dtype));
            filled.Add(ours);
        }

        var missing = target.Keys.Where(k => !filled.Contains(k)).ToArray();
        if (missing.Length > 0)
        {
            throw new InvalidDataException($"'{weightsPath}' lacks {missing.Length} of r3d_18's tensors, e.g. {string.Join(", ", missing.Take(3))}.");
        }
    }
}
