namespace SameVideoRetrieval;

/// <summary>How well each clip retrieves the other clip of its video, and what chance would score.</summary>
/// <param name="Videos">N videos, so 2N queries, each against a gallery of the other 2N−1 clips.</param>
/// <param name="Top1">Share of queries whose nearest gallery clip (cosine) is the other clip of their video.</param>
/// <param name="MeanReciprocalRank">Mean of 1/rank of the other clip.</param>
/// <param name="ChanceTop1">1/(2N−1): one right answer among 2N−1.</param>
/// <param name="ChanceMeanReciprocalRank">H(2N−1)/(2N−1): the mean of 1/k over ranks k uniform on 1..2N−1.</param>
/// <param name="Nearest">Per query (clip 2i and 2i+1 are video i's), the gallery clip ranked first: where a miss went.</param>
public sealed record RetrievalResult(int Videos, double Top1, double MeanReciprocalRank, double ChanceTop1, double ChanceMeanReciprocalRank, int[] Nearest);

/// <summary>
/// Same-video retrieval: every clip is a query, every other clip of every video is the gallery, and the one
/// right answer is the other clip of the query's video. Ties count against the query (a gallery clip scoring
/// exactly as high as the right one ranks before it), so identical embeddings cannot score.
/// </summary>
public static class RetrievalMetrics
{
    public static RetrievalResult Evaluate(IReadOnlyList<(float[] First, float[] Second)> videos)
    {
        ArgumentNullException.ThrowIfNull(videos);
        if (videos.Count < 2)
        {
            throw new ArgumentException("Retrieval needs at least two videos: with one, the gallery holds only the answer.", nameof(videos));
        }

        var clips = videos.SelectMany(v => new[] { v.First, v.Second }).ToArray();
        int hits = 0;
        double reciprocalRanks = 0;
        var nearest = new int[clips.Length];
        for (int query = 0; query < clips.Length; query++)
        {
            int partner = query ^ 1; // clips 2i and 2i+1 are video i's
            double right = Cosine(clips[query], clips[partner]);
            int rank = 1;
            double best = double.NegativeInfinity;
            for (int other = 0; other < clips.Length; other++)
            {
                if (other == query)
                {
                    continue;
                }

                double score = other == partner ? right : Cosine(clips[query], clips[other]);
                if (other != partner && score >= right)
                {
                    rank++;
                }

                // A tie goes against the partner here too, as in the rank.
                if (score > best || (score == best && other != partner))
                {
                    (nearest[query], best) = (other, score);
                }
            }

            hits += rank == 1 ? 1 : 0;
            reciprocalRanks += 1.0 / rank;
        }

        int gallery = clips.Length - 1;
        double harmonic = Enumerable.Range(1, gallery).Sum(k => 1.0 / k);
        return new RetrievalResult(videos.Count, (double)hits / clips.Length, reciprocalRanks / clips.Length, 1.0 / gallery, harmonic / gallery, nearest);
    }

    /// <summary>Cosine similarity; 0 when either vector is zero.</summary>
    public static double Cosine(float[] a, float[] b)
    {
        ArgumentNullException.ThrowIfNull(a);
        ArgumentNullException.ThrowIfNull(b);
        if (a.Length != b.Length)
        {
            throw new ArgumentException($"Embeddings of different sizes ({a.Length} and {b.Length}) cannot be compared.", nameof(b));
        }

        double dot = 0, aa = 0, bb = 0;
        for (int i = 0; i < a.Length; i++)
        {
            dot += a[i] * (double)b[i];
            aa += a[i] * (double)a[i];
            bb += b[i] * (double)b[i];
        }

        return aa > 0 && bb > 0 ? dot / Math.Sqrt(aa * bb) : 0;
    }
}
