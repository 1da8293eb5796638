using System.Data.Common;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using System.Text.Json;

namespace CvrlServe.Api.Library;

/// <summary>One clip of a stored video: where it lies (seconds) and each of its views' L2-normalized embedding (crop order).</summary>
public sealed record StoredClip(int Clip, double Start, double End, float[][] Views)
{
    /// <summary>The clip's embedding: its views averaged and normalized again (what clip-scope search compares).</summary>
    public float[] Embedding() => Core.Inference.VideoEmbedder.Mean(Views);
}

/// <summary>What a caller stores: one video's embeddings in one model's space, with the clip plan that made them.</summary>
public sealed record NewVideo(
    string Owner, string Sha256, string ModelId, string Model, string Name, IReadOnlyList<string> Tags,
    long Bytes, double DurationSeconds, string ClipPlan, float[] Embedding, IReadOnlyList<StoredClip> Clips);

/// <summary>
/// A stored video (without its per-clip views; <see cref="VideoStore.GetClipsAsync"/> reads those).
/// <see cref="Id"/> is opaque; an entry is unique per (<see cref="Owner"/>, <see cref="Sha256"/>, <see cref="ModelId"/>).
/// </summary>
public sealed record VideoEntry(
    string Id, string Owner, string Sha256, string ModelId, string Model, string Name, IReadOnlyList<string> Tags,
    long Bytes, double DurationSeconds, int Dimension, int Crops, int ClipCount, string ClipPlan, float[] Embedding, DateTimeOffset CreatedUtc);

/// <summary>A page of entries, newest first, and how many match in all.</summary>
public sealed record VideoPage(IReadOnlyList<VideoEntry> Entries, long Total);

/// <summary>A write to the library, in the order writes committed: what other replicas' search indexes replay.</summary>
public sealed record LibraryChange(long Sequence, string VideoId, string ModelId, bool Deleted);

/// <summary>An entry with every clip's embedding, as the search index holds it.</summary>
public sealed record IndexedVideo(VideoEntry Entry, IReadOnlyList<(int Clip, double Start, double End, float[] Embedding)> Clips);

/// <summary>
/// The library's entries in <see cref="LibraryDatabase"/> (SQLite or PostgreSQL, the same SQL). Vectors are
/// float32 little-endian blobs, never text. Every write also appends to the change log (one sequence per
/// write, handed out in commit order), which is how each replica keeps its in-memory index current.
/// Owner scoping is the caller's: pass the caller's owner, or null for an admin who sees every entry.
/// </summary>
public sealed class VideoStore(LibraryDatabase database, TimeProvider? timeProvider = null)
{
    private const string Columns = "v.id, v.owner, v.sha256, v.model_id, v.model, v.name, v.tags, v.bytes, v.duration_seconds, v.dimension, v.crops, v.clip_plan, v.embedding, v.created_ms, (SELECT COUNT(*) FROM clips c WHERE c.video_id = v.id)";

    private readonly TimeProvider _time = timeProvider ?? TimeProvider.System;

    public LibraryDatabase Database => database;

    /// <summary>True for a string of the form this store issues as an id: exactly 32 lower-case hex digits.</summary>
    public static bool IsValidId(string? id) => id is { Length: 32 } && id.All(c => char.IsAsciiDigit(c) || c is >= 'a' and <= 'f');

    /// <summary>
    /// Stores <paramref name="video"/> unless its owner already has the same content in the same model's
    /// space; either way returns the entry and whether this call created it. Two concurrent calls for the
    /// same video end with one entry, which both return.
    /// </summary>
    public async Task<(VideoEntry Entry, bool Created)> AddAsync(NewVideo video, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(video);
        if (video.Clips.Count == 0 || video.Clips.Any(c => c.Views.Length == 0 || c.Views.Length != video.Clips[0].Views.Length || c.Views.Any(v => v.Length != video.Embedding.Length)))
        {
            throw new ArgumentException("Every clip needs the same number of views, each of the embedding's dimension.", nameof(video));
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        string id = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(16));
        int inserted = await LibraryDatabase.ExecuteAsync(connection, transaction, """
            INSERT INTO videos (id, owner, sha256, model_id, model, name, tags, bytes, duration_seconds, dimension, crops, clip_plan, embedding, created_ms)
            VALUES (@id, @owner, @sha, @model_id, @model, @name, @tags, @bytes, @duration, @dimension, @crops, @plan, @embedding, @created)
            ON CONFLICT (owner, sha256, model_id) DO NOTHING
            """, cancellationToken,
            ("id", id), ("owner", video.Owner), ("sha", video.Sha256), ("model_id", video.ModelId), ("model", video.Model), ("name", video.Name),
            ("tags", JsonSerializer.Serialize(video.Tags)), ("bytes", video.Bytes), ("duration", video.DurationSeconds), ("dimension", video.Embedding.Length),
            ("crops", video.Clips[0].Views.Length), ("plan", video.ClipPlan), ("embedding", ToBlob(video.Embedding)), ("created", _time.GetUtcNow().ToUnixTimeMilliseconds())).ConfigureAwait(false);
        if (inserted == 1)
        {
            foreach (string tag in video.Tags)
            {
                await LibraryDatabase.ExecuteAsync(connection, transaction, "INSERT INTO video_tags (video_id, tag) VALUES (@id, @tag)", cancellationToken, ("id", id), ("tag", tag)).ConfigureAwait(false);
            }

            foreach (var clip in video.Clips)
            {
                await LibraryDatabase.ExecuteAsync(connection, transaction, "INSERT INTO clips (video_id, clip, start_seconds, end_seconds, views) VALUES (@id, @clip, @start, @end, @views)", cancellationToken,
                    ("id", id), ("clip", clip.Clip), ("start", clip.Start), ("end", clip.End), ("views", ToBlob(clip.Views.SelectMany(v => v).ToArray()))).ConfigureAwait(false);
            }

            await AppendChangeAsync(connection, transaction, id, video.ModelId, "put", cancellationToken).ConfigureAwait(false);
        }

        var entry = await FindAsync(connection, transaction, "v.owner = @owner AND v.sha256 = @sha AND v.model_id = @model_id", cancellationToken,
            ("owner", video.Owner), ("sha", video.Sha256), ("model_id", video.ModelId)).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return (entry ?? throw new InvalidOperationException("The entry vanished inside its own transaction."), inserted == 1);
    }

    /// <summary>The owner's entry for this content in this model's space, if stored: what makes a repeated upload cost no decode.</summary>
    public async Task<VideoEntry?> FindAsync(string owner, string sha256, string modelId, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await FindAsync(connection, null, "v.owner = @owner AND v.sha256 = @sha AND v.model_id = @model_id", cancellationToken,
            ("owner", owner), ("sha", sha256), ("model_id", modelId)).ConfigureAwait(false);
    }

    /// <summary>The entry, or null when there is none or it is not <paramref name="owner"/>'s (null owner: any).</summary>
    public async Task<VideoEntry?> GetAsync(string id, string? owner, CancellationToken cancellationToken)
    {
        if (!IsValidId(id))
        {
            return null;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await FindAsync(connection, null, "v.id = @id AND (@owner IS NULL OR v.owner = @owner)", cancellationToken, ("id", id), ("owner", owner)).ConfigureAwait(false);
    }

    /// <summary>Every clip of entry <paramref name="id"/> with every view's embedding, in clip order (empty when there is no such entry).</summary>
    public async Task<IReadOnlyList<StoredClip>> GetClipsAsync(string id, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        int crops = await LibraryDatabase.ScalarAsync<int?>(connection, null, "SELECT crops FROM videos WHERE id = @id", cancellationToken, ("id", id)).ConfigureAwait(false) ?? 0;
        if (crops == 0)
        {
            return [];
        }

        await using var command = LibraryDatabase.Command(connection, null, "SELECT clip, start_seconds, end_seconds, views FROM clips WHERE video_id = @id ORDER BY clip", ("id", id));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var clips = new List<StoredClip>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            float[] all = FromBlob((byte[])reader.GetValue(3));
            int dimension = all.Length / crops;
            clips.Add(new StoredClip(reader.GetInt32(0), reader.GetDouble(1), reader.GetDouble(2), Enumerable.Range(0, crops).Select(v => all.AsSpan(v * dimension, dimension).ToArray()).ToArray()));
        }

        return clips;
    }

    /// <summary>A page (1-based) of entries, newest first, optionally only <paramref name="owner"/>'s, with <paramref name="tag"/>, in <paramref name="modelId"/>'s space.</summary>
    public async Task<VideoPage> ListAsync(string? owner, string? tag, string? modelId, int page, int pageSize, CancellationToken cancellationToken)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(page, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(pageSize, 1);
        const string Filter = "(@owner IS NULL OR v.owner = @owner) AND (@model_id IS NULL OR v.model_id = @model_id) AND (@tag IS NULL OR EXISTS (SELECT 1 FROM video_tags t WHERE t.video_id = v.id AND t.tag = @tag))";
        (string, object?)[] parameters = [("owner", owner), ("tag", tag), ("model_id", modelId)];
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        long total = await LibraryDatabase.ScalarAsync<long>(connection, null, $"SELECT COUNT(*) FROM videos v WHERE {Filter}", cancellationToken, parameters).ConfigureAwait(false);
        var entries = await QueryAsync(connection, null, $"SELECT {Columns} FROM videos v WHERE {Filter} ORDER BY v.created_ms DESC, v.id DESC LIMIT @limit OFFSET @offset", cancellationToken,
            [.. parameters, ("limit", pageSize), ("offset", (long)(page - 1) * pageSize)]).ConfigureAwait(false);
        return new VideoPage(entries, total);
    }

    /// <summary>Deletes entry <paramref name="id"/> (with its clips and tags); false when there was none.</summary>
    public async Task<bool> DeleteAsync(string id, CancellationToken cancellationToken)
    {
        if (!IsValidId(id))
        {
            return false;
        }

        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var transaction = await database.BeginWriteAsync(connection, cancellationToken).ConfigureAwait(false);
        string? modelId = await LibraryDatabase.ScalarAsync<string>(connection, transaction, "SELECT model_id FROM videos WHERE id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
        if (modelId is null)
        {
            return false;
        }

        // Children first: SQLite enforces the cascade only with foreign keys on, and this must not depend on it.
        await LibraryDatabase.ExecuteAsync(connection, transaction, "DELETE FROM clips WHERE video_id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
        await LibraryDatabase.ExecuteAsync(connection, transaction, "DELETE FROM video_tags WHERE video_id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
        await LibraryDatabase.ExecuteAsync(connection, transaction, "DELETE FROM videos WHERE id = @id", cancellationToken, ("id", id)).ConfigureAwait(false);
        await AppendChangeAsync(connection, transaction, id, modelId, "delete", cancellationToken).ConfigureAwait(false);
        await transaction.CommitAsync(cancellationToken).ConfigureAwait(false);
        return true;
    }

    /// <summary>The newest change's sequence (0 when nothing was ever written).</summary>
    public async Task<long> LastChangeAsync(CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        return await LibraryDatabase.ScalarAsync<long?>(connection, null, "SELECT MAX(seq) FROM changes", cancellationToken).ConfigureAwait(false) ?? 0;
    }

    /// <summary>Up to <paramref name="max"/> changes after sequence <paramref name="after"/>, oldest first.</summary>
    public async Task<IReadOnlyList<LibraryChange>> ChangesAfterAsync(long after, int max, CancellationToken cancellationToken)
    {
        await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
        await using var command = LibraryDatabase.Command(connection, null, "SELECT seq, video_id, model_id, op FROM changes WHERE seq > @after ORDER BY seq LIMIT @max", ("after", after), ("max", max));
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var changes = new List<LibraryChange>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            changes.Add(new LibraryChange(reader.GetInt64(0), reader.GetString(1), reader.GetString(2), reader.GetString(3) == "delete"));
        }

        return changes;
    }

    /// <summary>
    /// Entries with their clips' embeddings, for the search index: those named by <paramref name="ids"/>,
    /// or every entry when <paramref name="ids"/> is null. Calls <paramref name="each"/> once per entry, streaming.
    /// </summary>
    public async Task LoadForIndexAsync(IReadOnlyCollection<string>? ids, Action<IndexedVideo> each, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(each);
        foreach (var chunk in ids is null ? [null] : ids.Chunk(200).Select(c => (string[]?)c))
        {
            await using var connection = await database.OpenAsync(cancellationToken).ConfigureAwait(false);
            string where = chunk is null ? "" : $"WHERE v.id IN ({string.Join(", ", chunk.Select((_, i) => "@i" + i))})";
            (string, object?)[] parameters = chunk is null ? [] : chunk.Select((id, i) => ("i" + i, (object?)id)).ToArray();
            var entries = (await QueryAsync(connection, null, $"SELECT {Columns} FROM videos v {where}", cancellationToken, parameters).ConfigureAwait(false)).ToDictionary(e => e.Id, StringComparer.Ordinal);
            var clips = entries.Keys.ToDictionary(id => id, _ => new List<(int, double, double, float[])>(), StringComparer.Ordinal);
            string clipWhere = chunk is null ? "" : $"WHERE video_id IN ({string.Join(", ", chunk.Select((_, i) => "@i" + i))})";
            await using (var command = LibraryDatabase.Command(connection, null, $"SELECT video_id, clip, start_seconds, end_seconds, views FROM clips {clipWhere} ORDER BY video_id, clip", parameters))
            await using (var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false))
            {
                while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
                {
                    string id = reader.GetString(0);
                    if (!entries.TryGetValue(id, out var entry))
                    {
                        continue;
                    }

                    float[] all = FromBlob((byte[])reader.GetValue(4));
                    var views = Enumerable.Range(0, entry.Crops).Select(v => all.AsSpan(v * entry.Dimension, entry.Dimension).ToArray()).ToArray();
                    clips[id].Add((reader.GetInt32(1), reader.GetDouble(2), reader.GetDouble(3), Core.Inference.VideoEmbedder.Mean(views)));
                }
            }

            foreach (var entry in entries.Values)
            {
                each(new IndexedVideo(entry, clips[entry.Id]));
            }
        }
    }

    /// <summary>A vector as float32 little-endian bytes.</summary>
    public static byte[] ToBlob(ReadOnlySpan<float> vector)
    {
        EnsureLittleEndian();
        return MemoryMarshal.AsBytes(vector).ToArray();
    }

    /// <summary>The vector a <see cref="ToBlob"/> blob holds.</summary>
    public static float[] FromBlob(byte[] blob)
    {
        ArgumentNullException.ThrowIfNull(blob);
        EnsureLittleEndian();
        if (blob.Length % sizeof(float) != 0)
        {
            throw new InvalidDataException($"A vector blob of {blob.Length} bytes is not whole float32 values.");
        }

        return MemoryMarshal.Cast<byte, float>(blob).ToArray();
    }

    private static void EnsureLittleEndian()
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("The library stores vectors as little-endian float32.");
        }
    }

    private static Task<int> AppendChangeAsync(DbConnection connection, DbTransaction transaction, string id, string modelId, string op, CancellationToken cancellationToken) =>
        LibraryDatabase.ExecuteAsync(connection, transaction, "INSERT INTO changes (video_id, model_id, op) VALUES (@id, @model_id, @op)", cancellationToken, ("id", id), ("model_id", modelId), ("op", op));

    private static async Task<VideoEntry?> FindAsync(DbConnection connection, DbTransaction? transaction, string where, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        var found = await QueryAsync(connection, transaction, $"SELECT {Columns} FROM videos v WHERE {where}", cancellationToken, parameters).ConfigureAwait(false);
        return found.Count > 0 ? found[0] : null;
    }

    private static async Task<IReadOnlyList<VideoEntry>> QueryAsync(DbConnection connection, DbTransaction? transaction, string sql, CancellationToken cancellationToken, params (string, object?)[] parameters)
    {
        await using var command = LibraryDatabase.Command(connection, transaction, sql, parameters);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken).ConfigureAwait(false);
        var entries = new List<VideoEntry>();
        while (await reader.ReadAsync(cancellationToken).ConfigureAwait(false))
        {
            entries.Add(new VideoEntry(
                reader.GetString(0), reader.GetString(1), reader.GetString(2), reader.GetString(3), reader.GetString(4), reader.GetString(5),
                JsonSerializer.Deserialize<string[]>(reader.GetString(6)) ?? [], reader.GetInt64(7), reader.GetDouble(8), reader.GetInt32(9), reader.GetInt32(10),
                Convert.ToInt32(reader.GetValue(14), System.Globalization.CultureInfo.InvariantCulture), reader.GetString(11), FromBlob((byte[])reader.GetValue(12)),
                DateTimeOffset.FromUnixTimeMilliseconds(reader.GetInt64(13))));
        }

        return entries;
    }
}
