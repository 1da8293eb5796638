using System.IO.Compression;
using System.Text.Json;
using CvrlServe.Core.Inference;

namespace CvrlServe.Core.Probes;

/// <summary>A loaded probe with its record.</summary>
public sealed record StoredProbe(ProbeMetadata Metadata, LinearProbe Probe);

/// <summary>
/// Probes of one encoder in <c>models/ENCODER/probes/</c>: <c>NAME.zip</c> (the ML.NET model, with the
/// record inside as <c>cvrl-probe.json</c>) and <c>NAME.json</c> (the same record, for people and
/// listings). Each file is written under a temporary name and renamed over the old one, and loading
/// reads the record from inside the zip, so a process that dies mid-write leaves the previous probe
/// whole. Loading against another encoder (hash) or embedding size is refused.
/// </summary>
public static class ProbeStore
{
    public const string Folder = "probes";
    private const string RecordEntry = "cvrl-probe.json";

    public static string PathOf(string modelFolder, string name) => Path.Combine(modelFolder, Folder, name + ".zip");

    /// <summary>Test seam: called after the new zip is written to its temporary name, before any rename.</summary>
    internal static Action? AfterTemporaryWrite { get; set; }

    public static void Save(string modelFolder, ProbeMetadata metadata, LinearProbe probe)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(probe);
        ValidateName(metadata.Name);
        string folder = Path.Combine(modelFolder, Folder);
        Directory.CreateDirectory(folder);
        foreach (string stale in Directory.GetFiles(folder, $"{metadata.Name}.*.tmp"))
        {
            File.Delete(stale); // left by an earlier write that died
        }

        string record = JsonSerializer.Serialize(metadata, EncoderManifest.Json);
        string zip = Path.Combine(folder, metadata.Name + ".zip");
        string json = Path.Combine(folder, metadata.Name + ".json");
        string zipTemp = $"{zip}.{Guid.NewGuid():N}.tmp";
        string jsonTemp = $"{json}.{Guid.NewGuid():N}.tmp";
        using (var stream = new FileStream(zipTemp, FileMode.CreateNew))
        {
            probe.Save(stream);
        }

        using (var archive = ZipFile.Open(zipTemp, ZipArchiveMode.Update))
        using (var writer = new StreamWriter(archive.CreateEntry(RecordEntry).Open()))
        {
            writer.Write(record);
        }

        AfterTemporaryWrite?.Invoke();
        File.WriteAllText(jsonTemp, record);
        File.Move(zipTemp, zip, overwrite: true);
        File.Move(jsonTemp, json, overwrite: true);
    }

    /// <summary>Loads probe <paramref name="name"/> of the model in <paramref name="modelFolder"/>, checked against its manifest.</summary>
    public static StoredProbe Load(string modelFolder, string name, EncoderManifest encoder)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ValidateName(name);
        string zip = PathOf(modelFolder, name);
        if (!File.Exists(zip))
        {
            throw new ProbeNotFoundException(name, encoder.Name, List(modelFolder));
        }

        ProbeMetadata metadata;
        using (var archive = ZipFile.OpenRead(zip))
        {
            var entry = archive.GetEntry(RecordEntry) ?? throw new InvalidDataException($"'{zip}' has no {RecordEntry}: not a CvrlServe probe.");
            using var reader = new StreamReader(entry.Open());
            metadata = JsonSerializer.Deserialize<ProbeMetadata>(reader.ReadToEnd(), EncoderManifest.Json) ?? throw new InvalidDataException($"'{zip}' has an empty record.");
        }

        if (!string.Equals(metadata.EncoderSha256, encoder.EncoderSha256, StringComparison.OrdinalIgnoreCase))
        {
            throw new ProbeMismatchException($"Probe '{name}' was trained on encoder {metadata.EncoderSha256[..12]}… ('{metadata.Encoder}'), not on this model's {encoder.EncoderSha256[..12]}… ('{encoder.Name}'): its embedding space differs. Retrain the probe.");
        }

        if (metadata.EmbeddingSize != encoder.Output.Dimension)
        {
            throw new ProbeMismatchException($"Probe '{name}' takes {metadata.EmbeddingSize}-d embeddings; this model makes {encoder.Output.Dimension}-d ones.");
        }

        using var stream = File.OpenRead(zip);
        return new StoredProbe(metadata, LinearProbe.Load(stream, metadata.EmbeddingSize, metadata.Classes));
    }

    public static IReadOnlyList<string> List(string modelFolder)
    {
        string folder = Path.Combine(modelFolder, Folder);
        return Directory.Exists(folder)
            ? Directory.GetFiles(folder, "*.zip").Select(Path.GetFileNameWithoutExtension).OfType<string>().Order(StringComparer.Ordinal).ToArray()
            : [];
    }

    private static void ValidateName(string name)
    {
        if (string.IsNullOrWhiteSpace(name) || name.Length > 100 || name.StartsWith('.') || name.Any(c => !(char.IsLetterOrDigit(c) || c is '-' or '_' or '.')))
        {
            throw new ArgumentException($"'{name}' is not a valid probe name: use letters, digits, '-', '_' and '.'.", nameof(name));
        }
    }
}
