using CvrlServe.Core.Inference;

namespace CvrlServe.Training.Export;

/// <summary>
/// Writes <c>encoder.onnx</c> + <c>encoder.json</c> into a model folder atomically: both go into a
/// hidden sibling folder first, which is then renamed into place, so a watcher never sees half a model.
/// Replacing a model keeps its <c>probes/</c> (they will be refused against the new hash, not lost).
/// </summary>
public static class ModelFolder
{
    public static EncoderManifest Write(string folder, byte[] onnx, Func<string, EncoderManifest> manifestFor)
    {
        ArgumentNullException.ThrowIfNull(onnx);
        ArgumentNullException.ThrowIfNull(manifestFor);
        string target = Path.GetFullPath(folder.TrimEnd('/', '\\'));
        string parent = Path.GetDirectoryName(target) ?? throw new ArgumentException($"'{folder}' has no parent folder.", nameof(folder));
        string name = Path.GetFileName(target);
        Directory.CreateDirectory(parent);
        string staging = Path.Combine(parent, $".{name}.tmp-{Guid.NewGuid():N}");
        Directory.CreateDirectory(staging);
        try
        {
            string modelPath = Path.Combine(staging, EncoderManifest.ModelFileName);
            File.WriteAllBytes(modelPath, onnx);
            var manifest = manifestFor(EncoderManifest.Sha256Of(modelPath));
            File.WriteAllText(Path.Combine(staging, EncoderManifest.FileName), manifest.ToJson());
            Swap(target, staging, parent, name);
            return manifest;
        }
        catch
        {
            if (Directory.Exists(staging))
            {
                Directory.Delete(staging, recursive: true);
            }

            throw;
        }
    }

    private static void Swap(string target, string staging, string parent, string name)
    {
        if (!Directory.Exists(target))
        {
            Directory.Move(staging, target);
            return;
        }

        string probes = Path.Combine(target, "probes");
        if (Directory.Exists(probes))
        {
            Directory.Move(probes, Path.Combine(staging, "probes"));
        }

        string retired = Path.Combine(parent, $".{name}.old-{Guid.NewGuid():N}");
        Directory.Move(target, retired);
        Directory.Move(staging, target);
        Directory.Delete(retired, recursive: true);
    }
}
