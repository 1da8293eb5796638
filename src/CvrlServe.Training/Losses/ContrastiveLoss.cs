using static TorchSharp.torch;

namespace CvrlServe.Training.Losses;

/// <summary>A loss value with the metrics the reference logs beside it.</summary>
/// <param name="Loss">Scalar loss tensor (differentiable).</param>
/// <param name="Accuracy">Fraction of anchors whose most similar other-view clip is their positive.</param>
/// <param name="Entropy">Mean entropy of the softmax over the other view's clips.</param>
public sealed record ContrastiveResult(Tensor Loss, double Accuracy, double Entropy);

/// <summary>
/// CVRL's contrastive loss (SimCLR NT-Xent / InfoNCE, cvrl-method.md §3). <c>z</c> holds 2B projections:
/// rows i and i + B are the two clips of video i. Each half is L2-normalized; for anchors of view a the
/// logits are [h1·h2ᵀ | h1·h1ᵀ − 1e9·I] / τ with target i, likewise for view b, and the loss is the sum
/// of the two mean cross-entropies (ℓa + ℓb, not their average), as the reference code does.
/// </summary>
public static class ContrastiveLoss
{
    public const double DefaultTemperature = 0.1;
    private const double LargeNumber = 1e9;

    public static ContrastiveResult Compute(Tensor z, double temperature = DefaultTemperature)
    {
        ArgumentNullException.ThrowIfNull(z);
        if (z.dim() != 2 || z.shape[0] % 2 != 0 || z.shape[0] < 2)
        {
            throw new ArgumentException($"Expected [2B, D] projections, got [{string.Join(',', z.shape)}].", nameof(z));
        }

        using var scope = NewDisposeScope();
        long b = z.shape[0] / 2;
        var projections = z.to_type(ScalarType.Float32);
        var h1 = nn.functional.normalize(projections[..(int)b], dim: 1);
        var h2 = nn.functional.normalize(projections[(int)b..], dim: 1);
        var labels = arange(b, device: z.device);
        var mask = eye(b, device: z.device) * LargeNumber;

        var ab = h1.matmul(h2.t()) / temperature;
        var aa = h1.matmul(h1.t()) / temperature - mask;
        var ba = h2.matmul(h1.t()) / temperature;
        var bb = h2.matmul(h2.t()) / temperature - mask;
        var lossA = nn.functional.cross_entropy(cat([ab, aa], 1), labels);
        var lossB = nn.functional.cross_entropy(cat([ba, bb], 1), labels);
        var loss = lossA + lossB;

        using var noGrad = no_grad();
        double accuracy = ab.argmax(1).eq(labels).to_type(ScalarType.Float32).mean().item<float>();
        var logProbabilities = nn.functional.log_softmax(ab, 1);
        double entropy = (-(logProbabilities.exp() * logProbabilities).sum(1)).mean().item<float>();
        return new ContrastiveResult(scope.MoveToOuter(loss), accuracy, entropy);
    }
}
