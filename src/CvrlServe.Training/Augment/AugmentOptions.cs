namespace CvrlServe.Training.Augment;

/// <summary>
/// CVRL's spatial augmentation (cvrl-method.md §5) with its defaults. Probabilities per clip index
/// (clip 1, clip 2) where the reference treats the two clips differently (blur, solarize).
/// </summary>
public sealed record AugmentOptions
{
    /// <summary>Output side after the random resized crop.</summary>
    public int CropSize { get; init; } = 224;

    public double MinArea { get; init; } = 0.3;

    public double MaxArea { get; init; } = 1.0;

    /// <summary>Width/height ratio range, sampled linearly (not log), as TF does.</summary>
    public double MinAspect { get; init; } = 0.5;

    public double MaxAspect { get; init; } = 2.0;

    public double FlipProbability { get; init; } = 0.5;

    public double JitterProbability { get; init; } = 0.8;

    /// <summary>Colour-jitter strengths: factors drawn from [1 − s, 1 + s]; hue shifted by up to ±<see cref="Hue"/>.</summary>
    public double Brightness { get; init; } = 0.8;

    public double Contrast { get; init; } = 0.8;

    public double Saturation { get; init; } = 0.8;

    public double Hue { get; init; } = 0.2;

    public double GrayscaleProbability { get; init; } = 0.2;

    /// <summary>Gaussian blur probability for clip 1 and clip 2 (BYOL-style asymmetry of the current reference code).</summary>
    public double[] BlurProbability { get; init; } = [1.0, 0.1];

    public double MinSigma { get; init; } = 0.1;

    public double MaxSigma { get; init; } = 2.0;

    /// <summary>Solarization probability for clip 1 and clip 2.</summary>
    public double[] SolarizeProbability { get; init; } = [0.0, 0.2];

    /// <summary>
    /// True: one draw per clip applied to every frame (CVRL). False: an independent draw for every frame,
    /// the paper's "inconsistent" ablation.
    /// </summary>
    public bool TemporallyConsistent { get; init; } = true;

    /// <summary>Supervised training and linear evaluation: crop and flip only.</summary>
    public AugmentOptions CropAndFlipOnly() => this with
    {
        JitterProbability = 0,
        GrayscaleProbability = 0,
        BlurProbability = [0, 0],
        SolarizeProbability = [0, 0],
    };
}
