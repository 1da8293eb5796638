using CvrlServe.Training.Losses;
using static TorchSharp.torch;

namespace CvrlServe.Training.Tests.Losses;

public class ContrastiveLossTests
{
    [Fact]
    public void Compute_PositivesAligned_MatchesHandComputation()
    {
        // h1 = h2 = [[1,0],[0,1]], τ = 1. Anchor 0 of view a sees [ab | aa] = [1, 0 | 1 − 1e9, 0]:
        // CE = −log(e / (e + 1 + 1)) = log(1 + 2/e) = 0.551445; every anchor and both views alike,
        // so loss = 2 × 0.551445. Entropy of softmax(1, 0): p = e/(e+1) → 0.582203.
        using var z = tensor(new float[] { 1, 0, 0, 1, 1, 0, 0, 1 }, [4, 2]);
        var result = ContrastiveLoss.Compute(z, temperature: 1.0);
        Assert.Equal(2 * Math.Log(1 + 2 / Math.E), result.Loss.item<float>(), 5);
        Assert.Equal(1.0, result.Accuracy);
        Assert.Equal(0.582203, result.Entropy, 5);
    }

    [Fact]
    public void Compute_PositivesSwapped_MatchesHandComputation()
    {
        // h2 = [[0,1],[1,0]]: ab = [[0,1],[1,0]]; anchor 0 row [0, 1 | −1e9, 0], target 0:
        // CE = −log(1 / (1 + e + 1)) = log(2 + e) = 1.551445; loss = 2 × that; no positive wins.
        using var z = tensor(new float[] { 1, 0, 0, 1, 0, 1, 1, 0 }, [4, 2]);
        var result = ContrastiveLoss.Compute(z, temperature: 1.0);
        Assert.Equal(2 * Math.Log(2 + Math.E), result.Loss.item<float>(), 5);
        Assert.Equal(0.0, result.Accuracy);
    }

    [Fact]
    public void Compute_ThreeVideosUnnormalizedInput_NormalizesAndUsesTemperature()
    {
        // Scaling a row must not change anything (projections are L2-normalized first).
        float[] values = [3, 0, 0, 0, 2, 0, 0, 0, 5, 1, 0, 0, 0, 1, 0, 0, 0, 1];
        using var z = tensor(values, [6, 3]);
        var result = ContrastiveLoss.Compute(z, temperature: 0.5);
        // Each anchor: positive logit 1/0.5 = 2, four other logits 0 (two from each view, self masked):
        // CE = −log(e² / (e² + 4)) per anchor; loss = 2 × that.
        Assert.Equal(2 * Math.Log(1 + 4 / Math.Exp(2)), result.Loss.item<float>(), 5);
        Assert.Equal(1.0, result.Accuracy);
    }

    [Fact]
    public void Compute_Backward_GradientFlowsToProjections()
    {
        using var z = randn([8, 16]).requires_grad_();
        var result = ContrastiveLoss.Compute(z);
        result.Loss.backward();
        Assert.True(z.grad!.abs().sum().item<float>() > 0);
    }
}
