using System.Numerics.Tensors;

namespace CvrlServe.Api.Library;

/// <summary>What a search compares: whole videos (one vector each) or clips (one per clip).</summary>
public enum SearchScope
{
    Video,
    Clip,
}

/// <summary>What the index keeps of an entry besides its vectors: enough to filter and to answer.</summary>
public sealed record IndexedEntry(string Id, string Owner, string Name, IReadOnlySet<string> Tags);

/// <summary>One hit: the entry, the clip (null at video scope), and the cosine score.</summary>
public sealed record SearchHit(IndexedEntry Entry, int? Clip, double? Start, double? End, float Score);

/// <summary>
/// Exact cosine search over one embedding space: every stored vector is L2-normalized, so cosine is a dot
/// product, computed for every row with SIMD (<see cref="TensorPrimitives.Dot(ReadOnlySpan{float}, ReadOnlySpan{float})"/>)
/// over one contiguous row-major matrix per scope, and the best <c>k</c> are kept in a bounded heap. Large
/// matrices are scanned in parallel chunks. Rows are removed by moving the last row into the hole, so the
/// matrix stays dense. Thread-safe: searches share a read lock, writes take it exclusively.
/// </summary>
public sealed class SearchIndex(int dimension) : IDisposable
{
    /// <summary>Below this many rows one thread scans: splitting costs more than it saves.</summary>
    private const int ParallelRows = 32_768;

    private readonly ReaderWriterLockSlim _lock = new();
    private readonly Rows _videos = new(dimension);
    private readonly Rows _clips = new(dimension);
    private readonly Dictionary<string, (int VideoRow, List<int> ClipRows)> _entries = new(StringComparer.Ordinal);

    public int Dimension { get; } = dimension;

    /// <summary>How many videos and clips the index holds.</summary>
    public (int Videos, int Clips) Count
    {
        get
        {
            _lock.EnterReadLock();
            try
            {
                return (_videos.Count, _clips.Count);
            }
            finally
            {
                _lock.ExitReadLock();
            }
        }
    }

    /// <summary>Adds the entry, replacing what the index held under its id.</summary>
    public void Upsert(IndexedEntry entry, ReadOnlySpan<float> embedding, IReadOnlyList<(int Clip, double Start, double End, float[] Embedding)> clips)
    {
        ArgumentNullException.ThrowIfNull(entry);
        ArgumentNullException.ThrowIfNull(clips);
        if (embedding.Length != Dimension || clips.Any(c => c.Embedding.Length != Dimension))
        {
            throw new ArgumentException($"Vectors in this index have {Dimension} dimensions.", nameof(embedding));
        }

        _lock.EnterWriteLock();
        try
        {
            RemoveLocked(entry.Id);
            int videoRow = _videos.Add(embedding, new RowMeta(entry, null, null, null));
            var clipRows = new List<int>(clips.Count);
            foreach (var clip in clips)
            {
                clipRows.Add(_clips.Add(clip.Embedding, new RowMeta(entry, clip.Clip, clip.Start, clip.End)));
            }

            _entries[entry.Id] = (videoRow, clipRows);
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>Removes the entry; false when the index did not hold it.</summary>
    public bool Remove(string id)
    {
        _lock.EnterWriteLock();
        try
        {
            return RemoveLocked(id);
        }
        finally
        {
            _lock.ExitWriteLock();
        }
    }

    /// <summary>
    /// The <paramref name="k"/> rows of <paramref name="scope"/> most similar to <paramref name="query"/>
    /// (normalized here), best first, among those <paramref name="filter"/> admits; ties go to the earlier row.
    /// </summary>
    public IReadOnlyList<SearchHit> Search(ReadOnlySpan<float> query, int k, SearchScope scope, Func<IndexedEntry, bool>? filter = null)
    {
        if (query.Length != Dimension)
        {
            throw new ArgumentException($"The query has {query.Length} dimensions; this index has {Dimension}.", nameof(query));
        }

        ArgumentOutOfRangeException.ThrowIfLessThan(k, 1);
        float[] q = query.ToArray();
        float norm = TensorPrimitives.Norm(q);
        if (norm > 0)
        {
            TensorPrimitives.Divide(q, norm, q);
        }

        _lock.EnterReadLock();
        try
        {
            var rows = scope == SearchScope.Video ? _videos : _clips;
            int chunks = rows.Count < ParallelRows ? 1 : Environment.ProcessorCount;
            var best = new TopK[chunks];
            int per = (rows.Count + chunks - 1) / Math.Max(chunks, 1);
            Parallel.For(0, chunks, new ParallelOptions { MaxDegreeOfParallelism = chunks }, c =>
            {
                var top = new TopK(k);
                int end = Math.Min(rows.Count, (c + 1) * per);
                for (int row = c * per; row < end; row++)
                {
                    var meta = rows.Meta[row];
                    if (filter is null || filter(meta.Entry))
                    {
                        top.Offer(TensorPrimitives.Dot(rows.Row(row), q), row);
                    }
                }

                best[c] = top;
            });
            var merged = new TopK(k);
            foreach (var top in best)
            {
                foreach (var (score, row) in top.Items)
                {
                    merged.Offer(score, row);
                }
            }

            return merged.Sorted().Select(h => rows.Meta[h.Row] is var m ? new SearchHit(m.Entry, m.Clip, m.Start, m.End, h.Score) : null!).ToArray();
        }
        finally
        {
            _lock.ExitReadLock();
        }
    }

    public void Dispose() => _lock.Dispose();

    private bool RemoveLocked(string id)
    {
        if (!_entries.Remove(id, out var held))
        {
            return false;
        }

        Move(_videos, held.VideoRow, isClip: false);
        foreach (int row in held.ClipRows.OrderDescending())
        {
            Move(_clips, row, isClip: true);
        }

        return true;
    }

    // Removes row by moving the last row into it, and tells the moved row's entry where it went.
    private void Move(Rows rows, int row, bool isClip)
    {
        int last = rows.Count - 1;
        if (row != last)
        {
            var moved = rows.Meta[last];
            rows.Copy(last, row);
            var held = _entries[moved.Entry.Id];
            if (isClip)
            {
                held.ClipRows[held.ClipRows.IndexOf(last)] = row;
            }
            else
            {
                _entries[moved.Entry.Id] = (row, held.ClipRows);
            }
        }

        rows.RemoveLast();
    }

    private sealed record RowMeta(IndexedEntry Entry, int? Clip, double? Start, double? End);

    /// <summary>A growable row-major float matrix with one metadata record per row.</summary>
    private sealed class Rows(int dimension)
    {
        private float[] _data = new float[dimension * 16];

        public RowMeta[] Meta { get; private set; } = new RowMeta[16];

        public int Count { get; private set; }

        public ReadOnlySpan<float> Row(int row) => _data.AsSpan(row * dimension, dimension);

        public int Add(ReadOnlySpan<float> vector, RowMeta meta)
        {
            if (Count == Meta.Length)
            {
                int capacity = checked(Meta.Length * 2);
                Array.Resize(ref _data, checked(capacity * dimension));
                var grown = Meta;
                Array.Resize(ref grown, capacity);
                Meta = grown;
            }

            vector.CopyTo(_data.AsSpan(Count * dimension, dimension));
            Meta[Count] = meta;
            return Count++;
        }

        public void Copy(int from, int to)
        {
            _data.AsSpan(from * dimension, dimension).CopyTo(_data.AsSpan(to * dimension, dimension));
            Meta[to] = Meta[from];
        }

        public void RemoveLast()
        {
            Count--;
            Meta[Count] = null!;
        }
    }

    /// <summary>The best k (score, row) pairs seen: a min-heap on score, ties broken towards the earlier row.</summary>
    private sealed class TopK(int k)
    {
        private readonly PriorityQueue<(float Score, int Row), (float Score, int Row)> _heap = new(Comparer<(float Score, int Row)>.Create((a, b) =>
            a.Score != b.Score ? a.Score.CompareTo(b.Score) : b.Row.CompareTo(a.Row)));

        public IEnumerable<(float Score, int Row)> Items => _heap.UnorderedItems.Select(i => i.Element);

        public void Offer(float score, int row)
        {
            if (_heap.Count < k)
            {
                _heap.Enqueue((score, row), (score, row));
            }
            else if (_heap.TryPeek(out var worst, out _) && (score > worst.Score || (score == worst.Score && row < worst.Row)))
            {
                _heap.DequeueEnqueue((score, row), (score, row));
            }
        }

        public IEnumerable<(float Score, int Row)> Sorted() => Items.OrderByDescending(i => i.Score).ThenBy(i => i.Row);
    }
}
