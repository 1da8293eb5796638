using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;

namespace CvrlServe.Training.Commands;

/// <summary>
/// A resumable JSON-lines file: one line per video, each written with one write and flushed to disk before the
/// next, so a killed run leaves complete lines and at most one torn last line. Opening it again drops that torn
/// tail and reads which videos are already done (a line with an embedding, or a stored library entry) or refused for good (a line with
/// <c>error</c> and <c>"refused": true</c>) in a given embedding space; lines of another model id do not count. The file is held
/// exclusively (FileShare.None: an advisory lock on Linux), so a second writer fails instead of interleaving.
/// </summary>
internal sealed class EmbedOutput : IDisposable
{
    private readonly FileStream? _file;
    private readonly TextWriter? _writer;
    private readonly Lock _gate = new();

    private EmbedOutput(FileStream? file, TextWriter? writer, IReadOnlyDictionary<string, bool> previous, long droppedBytes)
    {
        _file = file;
        _writer = writer;
        Previous = previous;
        DroppedBytes = droppedBytes;
    }

    /// <summary>Videos with a line from an earlier run in this embedding space: true when embedded, false when failed.</summary>
    public IReadOnlyDictionary<string, bool> Previous { get; }

    /// <summary>A file (resumable, failures recorded) rather than stdout (embeddings only, failures on stderr).</summary>
    public bool IsFile => _file is not null;

    /// <summary>Bytes of a torn last line removed on open.</summary>
    public long DroppedBytes { get; }

    /// <summary>Lines go to <paramref name="writer"/> (stdout): nothing to resume.</summary>
    public static EmbedOutput ToWriter(TextWriter writer) => new(null, writer, new Dictionary<string, bool>(), 0);

    public static EmbedOutput OpenFile(string path, string modelId)
    {
        FileStream file;
        try
        {
            string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
            if (folder is not null)
            {
                Directory.CreateDirectory(folder);
            }

            file = new FileStream(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);
        }
        catch (IOException e)
        {
            throw new IOException($"--out '{path}' cannot be opened for writing (is another cvrl embed writing it?): {e.Message}", e);
        }

        try
        {
            var (previous, keep) = Read(file, modelId);
            long dropped = file.Length - keep;
            file.SetLength(keep);
            file.Seek(0, SeekOrigin.End);
            return new EmbedOutput(file, null, previous, dropped);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    public void Write(JsonObject line)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(line.ToJsonString(JsonLines) + "\n");
        lock (_gate)
        {
            if (_file is not null)
            {
                _file.Write(bytes);
                _file.Flush(flushToDisk: true);
            }
            else
            {
                _writer!.Write(Encoding.UTF8.GetString(bytes));
                _writer.Flush();
            }
        }
    }

    public void Dispose() => _file?.Dispose();

    internal static readonly JsonSerializerOptions JsonLines = new() { WriteIndented = false };

    /// <summary>Marks an error line as a refusal for good: a rerun skips its video unless --retry-failed.</summary>
    internal const string RefusedField = "refused";

    /// <summary>Complete lines' outcomes for this model id, and the length up to the last newline (what is kept).</summary>
    private static (Dictionary<string, bool> Previous, long Keep) Read(FileStream file, string modelId)
    {
        var previous = new Dictionary<string, bool>(StringComparer.Ordinal);
        long keep = 0;
        long position = 0;
        var line = new MemoryStream();
        var buffer = new byte[64 * 1024];
        file.Seek(0, SeekOrigin.Begin);
        int read;
        while ((read = file.Read(buffer)) > 0)
        {
            int start = 0;
            for (int i = 0; i < read; i++)
            {
                if (buffer[i] != (byte)'\n')
                {
                    continue;
                }

                line.Write(buffer, start, i - start);
                Record(line.ToArray(), modelId, previous);
                line.SetLength(0);
                start = i + 1;
                keep = position + i + 1;
            }

            line.Write(buffer, start, read - start);
            position += read;
        }

        return (previous, keep);
    }

    private static void Record(byte[] line, string modelId, Dictionary<string, bool> previous)
    {
        try
        {
            var node = JsonNode.Parse(line) as JsonObject;
            if (node?["video"]?.GetValue<string>() is not { } video || node["modelId"]?.GetValue<string>() != modelId)
            {
                return;
            }

            // A success is never downgraded by a later failure line of the same video (e.g. --retry-failed runs).
            // Only refusals count as failed; any other error line (older versions wrote those for failures
            // that may pass, such as giving up on an unavailable server) leaves the video to be tried again.
            // Done: an embedding, or (the library sink) an entry the service stored.
            bool embedded = node["embedding"] is JsonArray || (node["library"] is JsonValue library && library.TryGetValue(out bool stored) && stored && node["id"] is JsonValue);
            bool refused = node[RefusedField] is JsonValue flag && flag.TryGetValue(out bool value) && value;
            if (embedded || refused)
            {
                previous[video] = embedded || previous.GetValueOrDefault(video);
            }
        }
        catch (Exception e) when (e is JsonException or InvalidOperationException or FormatException)
        {
            // Not one of our lines (edited by hand?): it does not count as done.
        }
    }
}
