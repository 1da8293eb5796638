using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;

namespace CvrlServe.Core.Probes;

/// <summary>A named linear-evaluation setting: the test view and the training crop size.</summary>
/// <param name="View">Test views: clips × crops, clip length and stride, short side, crop size.</param>
/// <param name="TrainCrop">The random resized crop's output side for the probe's training clips.</param>
public sealed record EvaluationPreset(string Name, ViewSpec View, int TrainCrop, string Description);

/// <summary>
/// The evaluation settings results are reported under (cvrl-method.md §7), as data. A preset's view
/// replaces the manifest's for probe features, so a probe trained under a preset lives in the space of
/// <see cref="ProbeFeatures.SpaceOf"/> (the model as if exported with that view): train and evaluate it
/// with the same preset, and every result names it. <c>cvrl export</c> may take the same data to write a
/// model folder whose manifest already has the preset's view (<c>EncoderExport.Write(..., preset.View, ...)</c>);
/// probes of that folder then need no preset at all, and a probe trained with <c>--preset</c> on another
/// export of the same weights loads there too, since the model id is the same.
/// </summary>
public static class EvaluationPresets
{
    /// <summary>
    /// What a CPU machine of this project affords, at the views <c>cvrl export</c> writes by default
    /// (16 frames at stride 2, short side 128, crop 112, 4 clips) but with 3 crops along the long side
    /// at test, as the protocol takes; training crops of 112.
    /// </summary>
    public static EvaluationPreset Small { get; } = new("small",
        new ViewSpec(Frames: 16, Stride: 2, ShortSide: 128, CropSize: 112, CropMode: CropMode.ThreeAlongLongSide, Clips: 4),
        TrainCrop: 112,
        "16x2 clips, short side 128, 4 clips x 3 crops of 112 at test, random resized crops of 112 for training");

    /// <summary>The paper's: 32×2 clips, short side 256, 10 clips × 3 crops of 256 at test, random resized crops of 224 for training.</summary>
    public static EvaluationPreset Paper { get; } = new("paper",
        new ViewSpec(Frames: 32, Stride: 2, ShortSide: 256, CropSize: 256, CropMode: CropMode.ThreeAlongLongSide, Clips: 10),
        TrainCrop: 224,
        "32x2 clips, short side 256, 10 clips x 3 crops of 256 at test, random resized crops of 224 for training (cvrl-method.md §7)");

    public static IReadOnlyList<EvaluationPreset> All { get; } = [Small, Paper];

    /// <summary>The preset called <paramref name="name"/> (case-insensitive), or null.</summary>
    public static EvaluationPreset? Find(string name) => All.FirstOrDefault(p => string.Equals(p.Name, name, StringComparison.OrdinalIgnoreCase));
}
