#!/usr/bin/python3
"""Runs the ONNX reference checker (Debian's python3-onnx) on exported models, with shape inference.

    /usr/bin/python3 tools/onnx_check.py models/NAME/encoder.onnx [...]
"""
import sys

import onnx
import onnx.checker
import onnx.shape_inference

status = 0
for path in sys.argv[1:]:
    try:
        model = onnx.load(path)
        onnx.checker.check_model(model, full_check=True)
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
        out = inferred.graph.output[0]
        dims = [d.dim_param or d.dim_value for d in out.type.tensor_type.shape.dim]
        print(f"{path}: ok (onnx {onnx.__version__}, ir {model.ir_version}, opset "
              f"{model.opset_import[0].version}, {len(model.graph.node)} nodes, output {out.name} {dims})")
    except Exception as error:  # report every file, then fail
        print(f"{path}: FAILED: {error}")
        status = 1
sys.exit(status)
