using TorchSharp.Modules;
using static TorchSharp.torch;

namespace CvrlServe.Training.Modules;

/// <summary>
/// CVRL's projection head (cvrl-method.md §2): Linear(D, H) → BN → ReLU, then (layers − 1) × [Linear(H, H) →
/// BN → ReLU], then Linear(H, 128); BN momentum 0.003, eps 1e-5. The reference has 3 hidden layers of
/// H = 2048. With 0 hidden layers it is one Linear(D, output). Dense layers start Glorot-uniform with zero
/// bias. Used in pretraining only; the exported encoder stops before it.
/// </summary>
public sealed class ProjectionHead : nn.Module<Tensor, Tensor>
{
    /// <summary>Keras momentum 0.997 is torch momentum 0.003.</summary>
    public const double BatchNormMomentum = 0.003;

    private readonly Sequential mlp;

    public ProjectionHead(int embedding, int hiddenLayers = 3, int hidden = 2048, int output = 128) : base(nameof(ProjectionHead))
    {
        var modules = new List<(string, nn.Module<Tensor, Tensor>)>();
        for (int i = 0; i < hiddenLayers; i++)
        {
            modules.Add(($"{3 * i}", nn.Linear(i == 0 ? embedding : hidden, hidden)));
            modules.Add(($"{3 * i + 1}", nn.BatchNorm1d(hidden, 1e-5, BatchNormMomentum)));
            modules.Add(($"{3 * i + 2}", nn.ReLU()));
        }

        modules.Add(($"{3 * hiddenLayers}", nn.Linear(hiddenLayers == 0 ? embedding : hidden, output)));
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
