using SameVideoRetrieval;

namespace CvrlServe.Training.Tests.Benchmark;

public sealed class SameVideoRetrievalTests
{
    [Fact]
    public void Evaluate_HandMadeVectors_Top1AndReciprocalRanks()
    {
        // Three videos, two clips each (A1 A2, B1 B2, C1 C2); A2 is not unit length on purpose: scores are cosines.
        var videos = new List<(float[], float[])>
        {
            ([1, 0, 0], [2, 0.2f, 0]),
            ([0, 1, 0], [0, 0.6f, 0.8f]),
            ([0, 0.8f, 0.6f], [0, 0, 1]),
        };

        var result = RetrievalMetrics.Evaluate(videos);

        // Rank of the partner per query: A1, A2 1 (cosine 0.995, all else ≤ 0.1); B1 2 (partner 0.6, C1 0.8);
        // B2 3 (partner 0.6, C1 0.96, C2 0.8); C1 3 (partner 0.6, B1 0.8, B2 0.96); C2 2 (partner 0.6, B2 0.8).
        Assert.Equal(3, result.Videos);
        Assert.Equal(2 / 6.0, result.Top1, 12);
        Assert.Equal((1 + 1 + 1 / 2.0 + 1 / 3.0 + 1 / 3.0 + 1 / 2.0) / 6, result.MeanReciprocalRank, 12);
        Assert.Equal(1 / 5.0, result.ChanceTop1, 12);
        Assert.Equal((1 + 1 / 2.0 + 1 / 3.0 + 1 / 4.0 + 1 / 5.0) / 5, result.ChanceMeanReciprocalRank, 12);
        Assert.Equal([1, 0, 4, 4, 3, 3], result.Nearest); // the misses went to C1 and B2
    }

    [Fact]
    public void Evaluate_IdenticalEmbeddingsEverywhere_ScoreNothing()
    {
        // Every gallery clip ties with the partner, and ties count against the query: rank 5 of 5.
        var same = new List<(float[], float[])> { ([1, 1], [1, 1]), ([1, 1], [1, 1]), ([1, 1], [1, 1]) };
        var result = RetrievalMetrics.Evaluate(same);
        Assert.Equal(0, result.Top1);
        Assert.Equal(1 / 5.0, result.MeanReciprocalRank, 12);
        Assert.DoesNotContain(result.Nearest.Select((n, q) => n == (q ^ 1)), hit => hit);
    }

    [Fact]
    public void Evaluate_OneVideo_IsRefused() =>
        Assert.Throws<ArgumentException>(() => RetrievalMetrics.Evaluate([([1f], [1f])]));
}
