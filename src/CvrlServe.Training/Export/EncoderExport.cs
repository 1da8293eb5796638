using CvrlServe.Core.Inference;
using CvrlServe.Core.Video;
using CvrlServe.Training.Modules;

namespace CvrlServe.Training.Export;

/// <summary>Exports an encoder with its manifest into a model folder (<c>models/NAME/</c>).</summary>
public static class EncoderExport
{
    /// <summary>CVRL's value range: pixels / 255 in [0, 1], no mean or std (cvrl-method.md §9).</summary>
    public static ValueSpec CvrlValues { get; } = new([0f, 0f, 0f], [1f, 1f, 1f]);

    /// <summary>
    /// Serving views for CVRL-style encoders, sized for CPU serving: 4 clips of 16 frames at stride 2,
    /// short side 128, centre crop 112. The paper's test views are 10 clips × 3 crops of 32 frames at 256.
    /// </summary>
    public static ViewSpec DefaultView { get; } = new(Frames: 16, Stride: 2, ShortSide: 128, CropSize: 112, CropMode: CropMode.Center, Clips: 4);

    public static EncoderManifest Write(string folder, R3dEncoder encoder, ViewSpec view, ValueSpec values, Provenance provenance, ClipGeometry? training)
    {
        ArgumentNullException.ThrowIfNull(encoder);
        ArgumentNullException.ThrowIfNull(view);
        byte[] onnx = OnnxExporter.Export(encoder);
        long parameters = encoder.parameters().Where(p => p.requires_grad).Sum(p => p.numel());
        long flops = OnnxGraphStats.ConvFlops(onnx, view.Frames, view.CropMode == CropMode.None ? view.ShortSide : view.CropSize,
            view.CropMode == CropMode.None ? view.ShortSide : view.CropSize);
        string name = Path.GetFileName(Path.GetFullPath(folder).TrimEnd('/'));
        return ModelFolder.Write(folder, onnx, sha => new EncoderManifest
        {
            Name = name,
            EncoderSha256 = sha,
            Input = new InputSpec(OnnxExporter.InputName),
            Output = new OutputSpec(OnnxExporter.OutputName, encoder.EmbeddingSize),
            View = view,
            Training = training,
            Values = values,
            Architecture = new ArchitectureSpec(encoder.Architecture.Name, encoder.Width, parameters, flops),
            Opset = OnnxExporter.Opset,
            Provenance = provenance,
        });
    }
}
