#!/usr/bin/python3
"""Evaluates an encoder.onnx node by node with PyTorch's functional ops, independently of CvrlServe's code
and of ONNX Runtime, on a formula input; writes the [N, D] output as the golden file that
tests/CvrlServe.Core.Tests/Inference/GoldenEmbeddingTests.cs compares EncoderSession.Run against.

Regenerate (after the model changes; the test refuses a golden file whose SHA-256 is not the model's):

    /usr/bin/python3 tools/peers/onnx_torch_eval.py \
        tests/CvrlServe.Core.Tests/Models/tiny-seed1/encoder.onnx \
        tests/CvrlServe.Core.Tests/Inference/Golden/tiny-seed1.golden.json

Debian's python3-onnx (1.12) has no reference evaluator, hence this one. The graph is evaluated in float64
(weights widened from float32), so the golden values are the model's exact output up to ~1e-12, and the
test's tolerance only has to cover ONNX Runtime's float32 arithmetic. Op types not implemented here fail
loudly rather than being skipped.
"""
import hashlib
import json
import math
import sys
from collections import Counter

import onnx
import onnx.numpy_helper
import torch
import torch.nn.functional as F

SHAPE = [2, 3, 8, 32, 32]  # N, C, T, H, W
FORMULA = "x[n,c,t,h,w] = ((n*7 + c*5 + t*3 + h*2 + w) % 17) / 16.0"
# The test's comparison: |actual - expected| <= ABS_TOL + REL_TOL * |expected| for every value.
ABS_TOL = 1e-4
REL_TOL = 1e-3
DTYPE = torch.float64


def formula_input(shape):
    n, c, t, h, w = shape
    idx = [torch.arange(size, dtype=torch.int64) for size in shape]
    value = (idx[0].view(n, 1, 1, 1, 1) * 7 + idx[1].view(1, c, 1, 1, 1) * 5 + idx[2].view(1, 1, t, 1, 1) * 3
             + idx[3].view(1, 1, 1, h, 1) * 2 + idx[4].view(1, 1, 1, 1, w)) % 17
    return value.to(DTYPE) / 16.0


def attributes(node):
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def refuse(node, why):
    raise NotImplementedError(f"node {node.name or node.output[0]} ({node.op_type}): {why}")


def check_known(node, attrs, known):
    unknown = set(attrs) - set(known)
    if unknown:
        refuse(node, f"attributes not implemented: {sorted(unknown)}")
    auto_pad = attrs.get("auto_pad", b"NOTSET")
    if isinstance(auto_pad, bytes):
        auto_pad = auto_pad.decode()
    if auto_pad != "NOTSET":
        refuse(node, f"auto_pad={auto_pad} not implemented")


def onnx_pads_to_torch(pads, spatial):
    """ONNX pads are [x1_begin, x2_begin, ..., x1_end, x2_end, ...]; F.pad wants (last_begin, last_end, ...)."""
    pads = list(pads) if pads else [0] * (2 * spatial)
    result = []
    for axis in reversed(range(spatial)):
        result += [pads[axis], pads[axis + spatial]]
    return result


def conv(node, inputs, attrs):
    check_known(node, attrs, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"})
    x, w = inputs[0], inputs[1]
    b = inputs[2] if len(inputs) > 2 else None
    spatial = x.dim() - 2
    if spatial != 3:
        refuse(node, f"only 3-D convolution is implemented, got {spatial} spatial axes")
    if "kernel_shape" in attrs and list(attrs["kernel_shape"]) != list(w.shape[2:]):
        refuse(node, f"kernel_shape {attrs['kernel_shape']} disagrees with the weight {list(w.shape)}")
    x = F.pad(x, onnx_pads_to_torch(attrs.get("pads"), spatial))  # zeros, begin and end may differ
    return F.conv3d(x, w, b, stride=attrs.get("strides", [1] * spatial), padding=0,
                    dilation=attrs.get("dilations", [1] * spatial), groups=attrs.get("group", 1))


def max_pool(node, inputs, attrs):
    check_known(node, attrs, {"kernel_shape", "strides", "pads", "dilations", "ceil_mode", "storage_order", "auto_pad"})
    if attrs.get("ceil_mode", 0) != 0:
        refuse(node, "ceil_mode=1 not implemented")
    if len(node.output) > 1 and node.output[1]:
        refuse(node, "the Indices output is not implemented")
    x = inputs[0]
    spatial = x.dim() - 2
    if spatial != 3:
        refuse(node, f"only 3-D pooling is implemented, got {spatial} spatial axes")
    # Padded cells never win a max: pad with -inf, then pool without padding.
    x = F.pad(x, onnx_pads_to_torch(attrs.get("pads"), spatial), value=-math.inf)
    return F.max_pool3d(x, attrs["kernel_shape"], stride=attrs.get("strides", [1] * spatial), padding=0,
                        dilation=attrs.get("dilations", [1] * spatial))


def flatten(node, inputs, attrs):
    check_known(node, attrs, {"axis"})
    x = inputs[0]
    axis = attrs.get("axis", 1)
    if axis < 0:
        axis += x.dim()
    outer = 1
    for size in x.shape[:axis]:
        outer *= size
    return x.reshape(outer, -1)


def relu(node, inputs, attrs):
    check_known(node, attrs, set())
    return torch.relu(inputs[0])


def add(node, inputs, attrs):
    check_known(node, attrs, set())
    return inputs[0] + inputs[1]


def global_average_pool(node, inputs, attrs):
    check_known(node, attrs, set())
    x = inputs[0]
    return x.mean(dim=tuple(range(2, x.dim())), keepdim=True)


OPS = {
    "Conv": conv,
    "Relu": relu,
    "Add": add,
    "MaxPool": max_pool,
    "GlobalAveragePool": global_average_pool,
    "Flatten": flatten,
}


def evaluate(model, feeds):
    values = dict(feeds)
    for init in model.graph.initializer:
        values[init.name] = torch.from_numpy(onnx.numpy_helper.to_array(init).copy()).to(DTYPE)
    for node in model.graph.node:
        if node.domain not in ("", "ai.onnx"):
            refuse(node, f"domain {node.domain} not implemented")
        op = OPS.get(node.op_type)
        if op is None:
            refuse(node, "op type not implemented")
        inputs = [values[name] if name else None for name in node.input]
        values[node.output[0]] = op(node, inputs, attributes(node))
    return [values[o.name] for o in model.graph.output]


def main(model_path, golden_path):
    torch.set_num_threads(1)
    with open(model_path, "rb") as f:
        model_bytes = f.read()
    model = onnx.load_from_string(model_bytes)
    if not any(o.domain in ("", "ai.onnx") for o in model.opset_import):
        raise NotImplementedError("no default-domain opset")
    ops = Counter(node.op_type for node in model.graph.node)
    print("op types:", dict(ops), file=sys.stderr)
    missing = sorted(set(ops) - set(OPS))
    if missing:
        raise NotImplementedError(f"op types not implemented: {missing}")
    if len(model.graph.input) - len(model.graph.initializer) > 1 or len(model.graph.output) != 1:
        raise NotImplementedError("expected one graph input and one output")
    initializers = {i.name for i in model.graph.initializer}
    input_name = next(i.name for i in model.graph.input if i.name not in initializers)
    output_name = model.graph.output[0].name

    x = formula_input(SHAPE)
    with torch.no_grad():
        (y,) = evaluate(model, {input_name: x})
        # Batch independence of the reference itself: sample 0 alone gives row 0.
        (y0,) = evaluate(model, {input_name: x[:1]})
    if y.dim() != 2 or y.shape[0] != SHAPE[0]:
        raise ValueError(f"expected [N, D] output, got {list(y.shape)}")
    drift = (y0[0] - y[0]).abs().max().item()
    if drift > 1e-9:
        raise ValueError(f"the reference is not batch independent: {drift}")

    golden = {
        "model": model_path.replace("\\", "/").split("/")[-2],
        "onnxSha256": hashlib.sha256(model_bytes).hexdigest(),
        "input": {"name": input_name, "shape": SHAPE, "formula": FORMULA, "elementType": "float32"},
        "output": {"name": output_name, "shape": list(y.shape)},
        "opTypes": dict(sorted(ops.items())),
        "reference": {
            "tool": "tools/peers/onnx_torch_eval.py",
            "evaluator": "node by node with torch.nn.functional on the onnx file's initializers",
            "arithmetic": "float64",
            "torch": torch.__version__,
            "onnx": onnx.__version__,
        },
        "tolerance": {"absolute": ABS_TOL, "relative": REL_TOL,
                      "rule": "|actual - expected| <= absolute + relative * |expected|"},
        "values": [[float(v) for v in row] for row in y.tolist()],
    }
    with open(golden_path, "w", encoding="utf-8") as f:
        json.dump(golden, f, indent=2)
        f.write("\n")
    print(f"{golden_path}: {list(y.shape)}, |y| max {y.abs().max().item():.6g}, min {y.min().item():.6g}",
          file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
