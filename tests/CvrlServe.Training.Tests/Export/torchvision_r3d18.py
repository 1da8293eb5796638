"""Reference for the import test: torchvision's r3d_18 with random weights and randomized batch-norm
statistics. Writes its state dict, an input clip and torchvision's pooled features (fc removed) as raw
little-endian float32. Run with Debian's python3 (python3-torchvision); nothing is downloaded."""
import pathlib
import sys

import torch
import torchvision

out = pathlib.Path(sys.argv[1])
shape = [int(v) for v in sys.argv[2].split(",")]
torch.manual_seed(0)
torch.set_num_threads(2)

model = torchvision.models.video.r3d_18()
with torch.no_grad():
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm3d):
            c = module.num_features
            module.running_mean.copy_(torch.randn(c) * 0.2)
            module.running_var.copy_(torch.rand(c) * 1.5 + 0.5)
            module.weight.copy_(torch.rand(c) + 0.5)
            module.bias.copy_(torch.randn(c) * 0.2)
model.eval()
torch.save(model.state_dict(), out / "r3d18.pth")

clip = torch.rand(shape)
model.fc = torch.nn.Identity()
with torch.no_grad():
    features = model(clip)
clip.numpy().astype("<f4").tofile(out / "input.f32")
features.numpy().astype("<f4").tofile(out / "features.f32")
print(torch.__version__, torchvision.__version__, tuple(features.shape))
