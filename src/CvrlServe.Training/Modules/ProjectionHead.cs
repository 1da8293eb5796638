using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>
/// CVRL's projection head (cvrl-method.md §2): 3 × [Linear(D, D) → BN (momentum 0.003, eps 1e-5) →
/// ReLU] → Linear(D, 128). Dense layers start Glorot-uniform with zero bias. Used in pretraining only;
/// the exported encoder stops before it.
/// </summary>
public sealed class ProjectionHead : nn.Module<Tensor, Tensor>
{
    /// <summary>Keras momentum 0.997 is torch momentum 0.003.</summary>
    public const double BatchNormMomentum = 0.003;

    private readonly Sequential mlp;

    public ProjectionHead(int embedding, int hiddenLayers = 3, int output = 128) : base(nameof(ProjectionHead))
    {
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int i = 0; i < hiddenLayers; i++)
        {
            modules.Add(($"{3 * i}", nn.Linear(embedding, embedding)));
            modules.Add(($"{3 * i + 1}", nn.BatchNorm1d(embedding, 1e-5, BatchNormMomentum)));
            modules.Add(($"{3 * i + 2}", nn.ReLU()));
        }

        modules.Add(($"{3 * hiddenLayers}", nn.Linear(embedding, output)));
        mlp = nn.Sequential(modules);
        RegisterComponents();
        using var noGrad = no_grad();
        foreach (var (_, child) in mlp.named_children())
        {
            if (child is Linear linear)
            {
                nn.init.xavier_uniform_(linear.weight!);
                nn.init.zeros_(linear.bias!);
            }
        }
    }

    public int OutputSize => (int)((Linear)mlp.children().Last()).weight!.shape[0];

    public override Tensor forward(Tensor input) => mlp.forward(input);

    protected override void Dispose(bool disposing)
    {
        if (disposing)
        {
            mlp.Dispose();
        }

        base.Dispose(disposing);
    }
}
