using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>Encoder + one linear layer (<c>fc</c>) to class logits: the supervised baseline and fine-tuning model.</summary>
public sealed class ClassifierModel : nn.Module<Tensor, Tensor>
{
    private readonly R3dEncoder encoder;
    private readonly Linear fc;

    public ClassifierModel(R3dEncoder encoder, int classes) : base(nameof(ClassifierModel))
    {
        this.encoder = encoder;
        fc = nn.Linear(encoder.EmbeddingSize, classes);
        RegisterComponents();
        using var noGrad = no_grad();
        nn.init.xavier_uniform_(fc.weight!);
        nn.init.zeros_(fc.bias!);
    }

    public R3dEncoder Encoder => encoder;

    public Linear Fc => fc;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(fc.forward(encoder.forward(input)));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            encoder.Dispose();
            fc.Dispose();
        }

        base.Dispose(disposing);
    }
}
