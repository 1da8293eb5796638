using System.Collections.Concurrent;
using System.IO.Compression;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.Json.Nodes;
using CvrlServe.Core.Inference;
using CvrlServe.Core.Storage;

namespace CvrlServe.Core.Probes;

/// <summary>A loaded probe with its record.</summary>
public sealed record StoredProbe(ProbeMetadata Metadata, LinearProbe Probe);

/// <summary>
/// The probes of one model folder, in <c>MODEL/probes/</c>: <c>NAME.zip</c> (the ML.NET model, with the
/// record inside as <c>cvrl-probe.json</c>) and <c>NAME.json</c> (the same record, for people and listings).
/// <para>
/// Several processes may share the folder (replicas on one network volume). Saving writes each file under a
/// temporary name unique to the save (a GUID) that parses back to exactly its probe's name, then renames it
/// over the old one, so a reader in any process sees the old zip or the new one whole, never a torn one,
/// and a process that dies mid-write leaves the previous probe whole. Its leftovers are recognised and
/// removed by a later save of that probe once they are old enough that no live writer can own them. The
/// renames of a save (zip, then record) and the deletes of <see cref="DeleteAsync"/> run under one lock
/// file per folder (<c>probes/.lock</c>, see <see cref="Storage.FileLock"/>), so concurrent saves and
/// deletes from any process leave the zip and its record of the same version: the last one wins whole.
/// Within the store, saves of one name are serialized; different names proceed in parallel. Loading reads
/// the zip once, through one handle, and takes both the record and the model from those bytes, so a save
/// landing in between can never pair one version's classes with another's weights.
/// </para>
/// <para>
/// Loaded probes are cached and reused while the file's length, modification time and the zip's central
/// directory (its last bytes, which carry every entry's CRC-32, the record's creation time included) stay
/// the same: a replacement from any process is seen on the next load even when the file system's clock is
/// too coarse to tell two writes apart. Each load opens the file, so a deleted probe is gone at once.
/// Loading against another model id or embedding size is refused.
/// </para>
/// Use one instance per model folder for the life of the process; it is thread-safe.
/// </summary>
public sealed class ProbeStore
{
    public const string FolderName = "probes";
    private const string RecordEntry = "cvrl-probe.json";
    private const string TemporarySuffix = ".tmp";

    /// <summary>How much of a zip's end is compared to tell versions apart: its central directory, for a probe's few entries.</summary>
    private const int TailBytes = 4096;

    /// <summary>A temporary file this old is a dead writer's leftover; a live save finishes in seconds.</summary>
    private static readonly TimeSpan StaleAfter = TimeSpan.FromMinutes(10);

    private readonly ConcurrentDictionary<string, SemaphoreSlim> _gates = new(StringComparer.Ordinal);
    private readonly ConcurrentDictionary<string, (FileStamp Stamp, StoredProbe Probe)> _cache = new(StringComparer.Ordinal);
    private readonly FileLock _folderLock;

    public ProbeStore(string modelFolder)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(modelFolder);
        ModelFolder = Path.GetFullPath(modelFolder);
        Folder = Path.Combine(ModelFolder, FolderName);
        _folderLock = new FileLock(Path.Combine(Folder, ".lock"));
    }

    public string ModelFolder { get; }

    /// <summary>The <c>probes</c> folder (created by the first save).</summary>
    public string Folder { get; }

    /// <summary>Where probe <paramref name="name"/>'s zip lives (for logs and the CLI; never for clients).</summary>
    public string PathOf(string name)
    {
        ValidateName(name);
        return Path.Combine(Folder, name + ".zip");
    }

    /// <summary>Names of the saved probes, sorted.</summary>
    public IReadOnlyList<string> List() => Directory.Exists(Folder)
        ? Directory.GetFiles(Folder, "*.zip").Select(Path.GetFileNameWithoutExtension).OfType<string>().Where(IsValidName).Order(StringComparer.Ordinal).ToArray()
        : [];

    /// <summary>
    /// Saves <paramref name="probe"/> under <paramref name="metadata"/>'s name, replacing any probe of that
    /// name atomically. Throws <see cref="InvalidRequestException"/> for a bad name.
    /// </summary>
    public async Task SaveAsync(ProbeMetadata metadata, LinearProbe probe, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(metadata);
        ArgumentNullException.ThrowIfNull(probe);
        ValidateName(metadata.Name);
        if (!metadata.Classes.SequenceEqual(probe.Classes, StringComparer.Ordinal) || metadata.EmbeddingSize != probe.Dimension || string.IsNullOrEmpty(metadata.ModelId))
        {
            throw new ArgumentException("The record must name the probe's classes (in order), its embedding size and a model id.", nameof(metadata));
        }

        string name = metadata.Name;
        var gate = Gate(name);
        await gate.WaitAsync(cancellationToken);
        try
        {
            Directory.CreateDirectory(Folder);
            DeleteStaleTemporaries(name);
            string record = JsonSerializer.Serialize(metadata with { SchemaVersion = ProbeMetadata.CurrentSchemaVersion }, EncoderManifest.Json);
            string zip = Path.Combine(Folder, name + ".zip");
            string json = Path.Combine(Folder, name + ".json");
            string zipTemp = TemporaryPath(name, ".zip");
            string jsonTemp = TemporaryPath(name, ".json");
            try
            {
                using (var stream = new FileStream(zipTemp, FileMode.CreateNew))
                {
                    probe.Save(stream);
                }

                using (var archive = ZipFile.Open(zipTemp, ZipArchiveMode.Update))
                using (var writer = new StreamWriter(archive.CreateEntry(RecordEntry).Open()))
                {
                    writer.Write(record);
                }

                // The stamp readers compare: never the same as the file it replaces, even within one clock tick.
                var previous = File.Exists(zip) ? File.GetLastWriteTimeUtc(zip) : DateTime.MinValue;
                var now = DateTime.UtcNow;
                File.SetLastWriteTimeUtc(zipTemp, now > previous ? now : previous.AddTicks(1));
                File.WriteAllText(jsonTemp, record);
                using (await _folderLock.AcquireAsync(cancellationToken))
                {
                    File.Move(zipTemp, zip, overwrite: true);
                    File.Move(jsonTemp, json, overwrite: true);
                }
            }
            finally
            {
                File.Delete(zipTemp); // no-ops once renamed; removes our own leftovers when a step failed
                File.Delete(jsonTemp);
            }

            _cache.TryRemove(name, out _);
        }
        finally
        {
            gate.Release();
        }
    }

    /// <summary>
    /// Loads probe <paramref name="name"/>, checked against <paramref name="encoder"/> (the manifest of the
    /// space the caller embeds in: <see cref="ProbeFeatures.SpaceOf"/> when it uses a preset's view). Throws
    /// <see cref="InvalidRequestException"/> for a bad name, <see cref="ProbeNotFoundException"/> when there
    /// is no such probe, <see cref="ProbeMismatchException"/> when it belongs to another model id or
    /// embedding size or was saved in the old format (bound to the encoder hash only), and
    /// <see cref="ProbeCorruptException"/> when the file cannot be read. Messages name no server path;
    /// <see cref="CvrlException.Detail"/> does.
    /// </summary>
    public async Task<StoredProbe> LoadAsync(string name, EncoderManifest encoder, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ValidateName(name);
        var stored = await ReadAsync(name, encoder.Name, cancellationToken);
        var metadata = stored.Metadata;
        if (!string.Equals(metadata.ModelId, encoder.ModelId, StringComparison.OrdinalIgnoreCase))
        {
            string trainedWith = metadata.Preset is { } preset ? $" (its features were taken with evaluation preset '{preset}')" : "";
            throw new ProbeMismatchException(
                $"Probe '{name}' was trained on embeddings of model {Short(metadata.ModelId)} ('{metadata.Encoder}'){trainedWith}, not of this model {Short(encoder.ModelId)} ('{encoder.Name}'): " +
                "another encoder or another view, so another embedding space. Retrain the probe.",
                $"probe {metadata.ModelId}, model {encoder.ModelId} in '{ModelFolder}'");
        }

        if (metadata.EmbeddingSize != encoder.Output.Dimension)
        {
            throw new ProbeMismatchException($"Probe '{name}' takes {metadata.EmbeddingSize}-d embeddings; this model makes {encoder.Output.Dimension}-d ones.");
        }

        return stored;
    }

    /// <summary>
    /// Loads probe <paramref name="name"/> for <paramref name="model"/> whatever view its features were taken
    /// with: checked against the space of its recorded view (<see cref="ProbeFeatures.SpaceOf"/>), so a probe
    /// trained with an evaluation preset loads for the model it was trained on and for no other. Throws as
    /// <see cref="LoadAsync"/> does.
    /// </summary>
    public async Task<StoredProbe> LoadForModelAsync(string name, EncoderManifest model, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ValidateName(name);
        // Messages name the model as its folder does (a manifest may carry another name).
        var stored = await ReadAsync(name, Path.GetFileName(ModelFolder), cancellationToken);
        return await LoadAsync(name, stored.Metadata.View is { } view ? ProbeFeatures.SpaceOf(model, view) : model, cancellationToken);
    }

    /// <summary>
    /// Deletes probe <paramref name="name"/> (its zip, then its record) under the folder's lock, so a save
    /// racing it from any process leaves either that save whole or nothing. Returns false when there was no
    /// zip of that name. Throws <see cref="InvalidRequestException"/> for a bad name.
    /// </summary>
    public async Task<bool> DeleteAsync(string name, CancellationToken cancellationToken = default)
    {
        ValidateName(name);
        string zip = Path.Combine(Folder, name + ".zip");
        if (!File.Exists(zip))
        {
            return false;
        }

        bool existed;
        using (await _folderLock.AcquireAsync(cancellationToken))
        {
            existed = File.Exists(zip);
            File.Delete(zip);
            File.Delete(Path.Combine(Folder, name + ".json"));
        }

        _cache.TryRemove(name, out _);
        return existed;
    }

    private async Task<StoredProbe> ReadAsync(string name, string model, CancellationToken cancellationToken)
    {
        string zip = Path.Combine(Folder, name + ".zip");
        Microsoft.Win32.SafeHandles.SafeFileHandle handle;
        try
        {
            handle = File.OpenHandle(zip, FileMode.Open, FileAccess.Read, FileShare.Read | FileShare.Delete);
        }
        catch (Exception e) when (e is FileNotFoundException or DirectoryNotFoundException)
        {
            throw new ProbeNotFoundException(name, model, List(), $"no file at '{zip}'");
        }

        // One handle: its stamp and its bytes are the same version, whatever renames land meanwhile.
        using (handle)
        {
            FileStamp stamp;
            try
            {
                stamp = Stamp(handle);
            }
            catch (IOException e)
            {
                throw new ProbeCorruptException(name, model, $"'{zip}': {e.Message}", e);
            }

            if (_cache.TryGetValue(name, out var cached) && cached.Stamp == stamp)
            {
                return cached.Probe;
            }

            var gate = Gate(name);
            await gate.WaitAsync(cancellationToken);
            try
            {
                // Another load may have read this very version while this one waited.
                if (_cache.TryGetValue(name, out cached) && cached.Stamp == stamp)
                {
                    return cached.Probe;
                }

                byte[] bytes = new byte[stamp.Length];
                int read = 0;
                while (read < bytes.Length)
                {
                    int n = RandomAccess.Read(handle, bytes.AsSpan(read), read);
                    read += n > 0 ? n : throw new ProbeCorruptException(name, model, $"'{zip}': the file ended early");
                }

                var stored = Parse(name, model, zip, bytes);
                _cache[name] = (stamp, stored);
                return stored;
            }
            finally
            {
                gate.Release();
            }
        }
    }

    /// <summary>Length, modification time and a hash of the file's end (a zip's central directory) of the open file.</summary>
    private static FileStamp Stamp(Microsoft.Win32.SafeHandles.SafeFileHandle handle)
    {
        long length = RandomAccess.GetLength(handle);
        int tailLength = (int)Math.Min(length, TailBytes);
        Span<byte> tail = stackalloc byte[TailBytes];
        tail = tail[..tailLength];
        int read = 0;
        while (read < tailLength)
        {
            int n = RandomAccess.Read(handle, tail[read..], length - tailLength + read);
            read += n > 0 ? n : throw new EndOfStreamException("the file ended early");
        }

        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(tail, hash);
        return new FileStamp(length, File.GetLastWriteTimeUtc(handle).Ticks, Convert.ToHexString(hash));
    }

    private static StoredProbe Parse(string name, string model, string zip, byte[] bytes)
    {
        try
        {
            using var memory = new MemoryStream(bytes, writable: false);
            ProbeMetadata metadata;
            using (var archive = new ZipArchive(memory, ZipArchiveMode.Read, leaveOpen: true))
            {
                var entry = archive.GetEntry(RecordEntry) ?? throw new InvalidDataException($"no {RecordEntry} entry: not a CvrlServe probe");
                using var reader = new StreamReader(entry.Open());
                metadata = ParseRecord(name, zip, reader.ReadToEnd());
            }

            memory.Position = 0;
            return new StoredProbe(metadata, LinearProbe.Load(memory, metadata.EmbeddingSize, metadata.Classes));
        }
        catch (Exception e) when (e is InvalidDataException or IOException or JsonException or FormatException or InvalidOperationException or ArgumentException or NotSupportedException or KeyNotFoundException)
        {
            throw new ProbeCorruptException(name, model, $"'{zip}': {e.Message}", e);
        }
    }

    private static ProbeMetadata ParseRecord(string name, string zip, string text)
    {
        var node = JsonNode.Parse(text) as JsonObject ?? throw new InvalidDataException("the record is not a JSON object");
        int schema = node["schemaVersion"]?.GetValue<int>() ?? 1;
        if (schema < ProbeMetadata.MinimumSchemaVersion || node["modelId"] is null)
        {
            throw new ProbeMismatchException(
                $"Probe '{name}' was saved in an older format that binds it to the encoder file only, not to the view its features were taken with. Retrain the probe.",
                $"'{zip}': record schema {schema}, no modelId");
        }

        if (schema > ProbeMetadata.CurrentSchemaVersion)
        {
            throw new ProbeMismatchException($"Probe '{name}' was saved by a newer version of CvrlServe (record schema {schema}).", $"'{zip}'");
        }

        var metadata = node.Deserialize<ProbeMetadata>(EncoderManifest.Json) ?? throw new InvalidDataException("the record is empty");
        if (metadata.EmbeddingSize < 1 || metadata.Classes is null || metadata.Classes.Count < 2)
        {
            throw new InvalidDataException("the record needs a positive embedding size and at least two classes");
        }

        return metadata;
    }

    private void DeleteStaleTemporaries(string name)
    {
        var cutoff = DateTime.UtcNow - StaleAfter;
        foreach (string file in Directory.EnumerateFiles(Folder, "*" + TemporarySuffix))
        {
            if (TemporaryOwner(Path.GetFileName(file)) == name && File.GetLastWriteTimeUtc(file) < cutoff)
            {
                File.Delete(file);
            }
        }
    }

    private string TemporaryPath(string name, string extension) => Path.Combine(Folder, $"{name}{extension}.{Guid.NewGuid():N}{TemporarySuffix}");

    /// <summary>
    /// The probe a temporary file belongs to: <c>NAME.zip.HEX32.tmp</c> or <c>NAME.json.HEX32.tmp</c> parse to
    /// NAME exactly (so <c>a.b.zip.….tmp</c> belongs to <c>a.b</c>, never to <c>a</c>); null for anything else.
    /// </summary>
    internal static string? TemporaryOwner(string fileName)
    {
        if (!fileName.EndsWith(TemporarySuffix, StringComparison.Ordinal))
        {
            return null;
        }

        string rest = fileName[..^TemporarySuffix.Length];
        int dot = rest.LastIndexOf('.');
        if (dot < 0 || rest.Length - dot - 1 != 32 || !rest[(dot + 1)..].All(char.IsAsciiHexDigitLower))
        {
            return null;
        }

        rest = rest[..dot];
        string? owner = rest.EndsWith(".zip", StringComparison.Ordinal) ? rest[..^4]
            : rest.EndsWith(".json", StringComparison.Ordinal) ? rest[..^5]
            : null;
        return owner is not null && IsValidName(owner) ? owner : null;
    }

    private SemaphoreSlim Gate(string name) => _gates.GetOrAdd(name, _ => new SemaphoreSlim(1, 1));

    private static string Short(string id) => id.Length > 12 ? id[..12] + "…" : id;

    private static bool IsValidName(string name) =>
        !string.IsNullOrWhiteSpace(name) && name.Length <= 100 && !name.StartsWith('.') && name.All(c => char.IsLetterOrDigit(c) || c is '-' or '_' or '.');

    /// <summary>Throws <see cref="InvalidRequestException"/> unless <paramref name="name"/> can name a probe (its file names derive from it).</summary>
    public static void ValidateName(string name)
    {
        if (!IsValidName(name))
        {
            string shown = name is null ? "(none)" : name.Length > 100 ? name[..100] + "…" : name;
            throw new InvalidRequestException($"'{shown}' is not a valid probe name: use up to 100 letters, digits, '-', '_' and '.', not starting with '.'.");
        }
    }

    private readonly record struct FileStamp(long Length, long LastWriteTicks, string TailSha256);
}
