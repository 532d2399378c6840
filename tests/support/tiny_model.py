"""A tiny hand-built model package (NHWC, softmax, no heatmap, fixed window) for tests
that need a real ONNX model that runs in microseconds."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import yaml
from onnx import TensorProto, helper, numpy_helper


def tiny_onnx(path: Path, batch: object = "N") -> None:
    """x [N,8,8,1] -> scores [N,2] = [mean(x), -mean(x)] (so softmax is checkable)."""
    w = numpy_helper.from_array(np.array([[1.0, -1.0]], np.float32), "w")
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["m"], axes=[1, 2], keepdims=0),  # [N,1]
        helper.make_node("MatMul", ["m", "w"], ["scores"]),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [batch, 2])],
        [w],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, path)


def tiny_manifest(**over: object) -> dict:
    """The manifest of the tiny model (DX only, softmax, no heatmap); ``over`` replaces keys."""
    m = {
        "name": "tiny",
        "version": "0.1",
        "manufacturer": "tests",
        "device_uid": "1.2.3.4",
        "intended_use": "unit test",
        "demo": True,
        "applies_to": {"modalities": ["DX"]},
        "input": {"name": "x", "layout": "NHWC", "height": 8, "width": 8, "channels": 1},
        "preprocess": {
            "window": {"source": "fixed", "center": 2048, "width": 4096},
            "resize": "stretch",
        },
        "output": {
            "scores": "scores",
            "activation": "softmax",
            "labels": [
                {"name": "bright", "threshold": 0.5},
                {
                    "name": "dark",
                    "threshold": 0.5,
                    "code": {"value": "X1", "scheme": "99TEST", "meaning": "Dark"},
                },
            ],
        },
        "runtime": {"max_batch_size": 4},
    }
    m.update(over)
    return m


def tiny_package(tmp_path: Path, name: str = "tiny", batch: object = "N", **over: object) -> Path:
    """Write the tiny model's package ``tmp_path/name`` (model.onnx and model.yaml)."""
    d = tmp_path / name
    d.mkdir()
    tiny_onnx(d / "model.onnx", batch)
    (d / "model.yaml").write_text(yaml.safe_dump(tiny_manifest(name=name, **over)))
    return d
