using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>Encoder + projection head: clips [N, 3, T, H, W] → projections [N, P] (normalized by the loss).</summary>
public sealed class ContrastiveModel : nn.Module<Tensor, Tensor>
{
    private readonly R3dEncoder encoder;
    private readonly ProjectionHead head;

    public ContrastiveModel(R3dEncoder encoder, ProjectionHead head) : base(nameof(ContrastiveModel))
    {
        this.encoder = encoder;
        this.head = head;
        RegisterComponents();
    }

    public R3dEncoder Encoder => encoder;

    public ProjectionHead Head => head;

    public override Tensor forward(Tensor input)
    {
        using var scope = NewDisposeScope();
        return scope.MoveToOuter(head.forward(encoder.forward(input)));
    }

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            encoder.Dispose();
            head.Dispose();
        }

        base.Dispose(disposing);
    }
}
