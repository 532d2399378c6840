"""A tiny helper over ``onnx.helper`` for building CNN graphs from numpy weights.

Nodes and initialisers go straight into the final ModelProto, so the weights exist in one
protobuf copy while building (``make_graph`` + ``make_model`` would hold three).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


class GraphBuilder:
    """Accumulates nodes and initialisers; names are generated deterministically."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.proto = onnx.ModelProto()
        self._n = 0

    def _name(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}_{self._n}"

    def const(self, array: np.ndarray, prefix: str = "w") -> str:
        """Add ``array`` as an initialiser; return its name."""
        name = self._name(prefix)
        self.proto.graph.initializer.append(
            numpy_helper.from_array(np.ascontiguousarray(array), name)
        )
        return name

    def op(
        self,
        op_type: str,
        inputs: list[str],
        prefix: str | None = None,
        outputs: list[str] | None = None,
        **attrs: object,
    ) -> str:
        """Add an ``op_type`` node; return its (first) output's name."""
        out = outputs or [self._name(prefix or op_type.lower())]
        self.proto.graph.node.append(helper.make_node(op_type, inputs, out, **attrs))
        return out[0]

    def conv(self, x: str, cin: int, cout: int, k: int, stride: int = 1, pad: int = 0) -> str:
        """Conv without bias, He-normal weights (keeps activations' scale through ReLU)."""
        std = np.sqrt(2.0 / (cin * k * k))
        w = (self.rng.standard_normal((cout, cin, k, k)) * std).astype(np.float32)
        return self.op(
            "Conv",
            [x, self.const(w)],
            "conv",
            kernel_shape=[k, k],
            strides=[stride, stride],
            pads=[pad] * 4,
        )

    def bn_relu(self, x: str, ch: int) -> str:
        """BatchNormalization (identity statistics, as an untrained net) then ReLU."""
        scale = self.const(np.ones(ch, np.float32), "bn_scale")
        bias = self.const(np.zeros(ch, np.float32), "bn_bias")
        mean = self.const(np.zeros(ch, np.float32), "bn_mean")
        var = self.const(np.ones(ch, np.float32), "bn_var")
        y = self.op("BatchNormalization", [x, scale, bias, mean, var], "bn", epsilon=1e-5)
        return self.op("Relu", [y], "relu")

    def model(
        self,
        inputs: list[onnx.ValueInfoProto],
        outputs: list[onnx.ValueInfoProto],
        name: str,
        doc: str,
    ) -> onnx.ModelProto:
        """Finish the (unchecked) model.

        The same fields ``make_graph``/``make_model`` would set, so the bytes are the same.
        The builder must not be used afterwards.
        """
        model = self.proto
        model.graph.name = name
        model.graph.input.extend(inputs)
        model.graph.output.extend(outputs)
        model.opset_import.append(helper.make_opsetid("", 17))
        model.producer_name = "dicom-node"
        model.producer_version = "1"
        model.ir_version = 8
        model.doc_string = doc
        return model


def tensor_info(name: str, shape: list[object]) -> onnx.ValueInfoProto:
    """Describe a float tensor ``name`` of ``shape`` (graph input or output)."""
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)
