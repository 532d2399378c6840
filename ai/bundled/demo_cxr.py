"""The bundled demo: a DenseNet-121-shaped chest X-ray classifier with untrained weights.

Built with ``onnx.helper`` from numpy weights drawn from a fixed seed, so the same code
gives byte-identical ONNX files everywhere; no torch, no downloads. The graph outputs
per-label logits and a per-label class activation map (CAM) computed in-graph: the CAM
is the classifier applied at every spatial position of the last feature map (so its
spatial mean is exactly the logit), upsampled to the input size and min-max scaled to
[0, 1] per label. NON-CLINICAL DEMO: the weights are random, the outputs mean nothing.
Only :func:`ai.bundled.cache.ensure_demo_package` imports this (and so ``onnx``), and
only when the package is not built yet.
"""

from __future__ import annotations

import numpy as np
import onnx

from ai.bundled.cache import DEMO_NAME, DEMO_VERSION, INTENDED_USE, SIZE
from ai.bundled.graph import GraphBuilder, tensor_info
from ai.labels import XRV_LABELS

DEMO_SEED = 20260101
BLOCKS = (6, 12, 24, 16)
GROWTH = 32
BN_SIZE = 4


def _densenet121(g: GraphBuilder, x: str) -> tuple[str, int]:
    """DenseNet-121 feature extractor; returns the final ReLU'd features and their channels."""
    y = g.conv(x, 1, 64, 7, stride=2, pad=3)
    y = g.bn_relu(y, 64)
    y = g.op("MaxPool", [y], "pool0", kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    ch = 64
    for i, n_layers in enumerate(BLOCKS):
        for _ in range(n_layers):
            h = g.bn_relu(y, ch)
            h = g.conv(h, ch, BN_SIZE * GROWTH, 1)
            h = g.bn_relu(h, BN_SIZE * GROWTH)
            h = g.conv(h, BN_SIZE * GROWTH, GROWTH, 3, pad=1)
            y = g.op("Concat", [y, h], "concat", axis=1)
            ch += GROWTH
        if i != len(BLOCKS) - 1:
            h = g.bn_relu(y, ch)
            h = g.conv(h, ch, ch // 2, 1)
            y = g.op("AveragePool", [h], "trans_pool", kernel_shape=[2, 2], strides=[2, 2])
            ch //= 2
    return g.bn_relu(y, ch), ch


def _build(seed: int, size: int) -> onnx.ModelProto:
    """Build the demo graph, unchecked.

    Input ``image`` [N,1,size,size]; outputs ``logits`` [N,18] and ``cam``
    [N,18,size,size] in [0, 1].
    """
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng)
    feats, ch = _densenet121(g, "image")
    n = len(XRV_LABELS)
    # Small classifier weights keep the untrained logits in a readable range.
    w = (rng.standard_normal((n, ch, 1, 1)) * (0.5 / np.sqrt(ch))).astype(np.float32)
    b = (rng.standard_normal(n) * 0.5).astype(np.float32)
    cam_raw = g.op(
        "Conv", [feats, g.const(w, "fc_w"), g.const(b, "fc_b")], "cam_raw", kernel_shape=[1, 1]
    )
    pooled = g.op("GlobalAveragePool", [cam_raw], "gap")
    g.op("Flatten", [pooled], outputs=["logits"], axis=1)
    # Upsample the CAM to the input size, then min-max per (image, label).
    shape = g.op("Shape", [cam_raw], "shape")
    nc = g.op(
        "Slice", [shape, g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64))], "nc"
    )
    sizes = g.op("Concat", [nc, g.const(np.array([size, size], np.int64))], "sizes", axis=0)
    up = g.op(
        "Resize",
        [cam_raw, "", "", sizes],
        "cam_up",
        mode="linear",
        coordinate_transformation_mode="half_pixel",
    )
    lo = g.op("ReduceMin", [up], "cam_min", axes=[2, 3], keepdims=1)
    hi = g.op("ReduceMax", [up], "cam_max", axes=[2, 3], keepdims=1)
    span = g.op(
        "Add", [g.op("Sub", [hi, lo], "span"), g.const(np.array(1e-6, np.float32))], "span_eps"
    )
    g.op("Div", [g.op("Sub", [up, lo], "shifted"), span], outputs=["cam"])
    doc = f"{DEMO_NAME} {DEMO_VERSION}: {INTENDED_USE} seed={seed}"
    return g.model(
        [tensor_info("image", ["N", 1, size, size])],
        [tensor_info("logits", ["N", n]), tensor_info("cam", ["N", n, size, size])],
        DEMO_NAME,
        doc,
    )


def build_demo_onnx(seed: int = DEMO_SEED, size: int = SIZE) -> onnx.ModelProto:
    """Build the demo model, checked by ``onnx.checker``."""
    model = _build(seed, size)
    onnx.checker.check_model(model)
    return model


def build_demo_bytes(seed: int = DEMO_SEED, size: int = SIZE) -> bytes:
    """Build the demo model's ONNX file contents, checked.

    The ModelProto is dropped before the check so that at most two copies of the
    weights exist at once.
    """
    data = _build(seed, size).SerializeToString()
    onnx.checker.check_model(data)
    return data
