"""The bundled demo: a DenseNet-121-shaped chest X-ray classifier with untrained weights.

Built with ``onnx.helper`` from numpy weights drawn from a fixed seed, so the same code
gives byte-identical ONNX files everywhere; no torch, no downloads. The graph outputs
per-label logits and a per-label class activation map (CAM) computed in-graph: the CAM
is the classifier applied at every spatial position of the last feature map (so its
spatial mean is exactly the logit), upsampled to the input size and min-max scaled to
[0, 1] per label. NON-CLINICAL DEMO: the weights are random, the outputs mean nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import onnx

from ai.bundled.graph import GraphBuilder, tensor_info
from ai.labels import XRV_LABELS, code_for
from ai.manifest import (
    AppliesTo,
    InputSpec,
    LabelSpec,
    Manifest,
    NormalizeSpec,
    OutputSpec,
    PreprocessSpec,
    RuntimeSpec,
    WindowSpec,
    dump_manifest,
    load_manifest,
)

log = logging.getLogger(__name__)

DEMO_NAME = "demo-cxr-densenet121"
DEMO_VERSION = "1.0.0"
DEMO_SEED = 20260101
SIZE = 224
BLOCKS = (6, 12, 24, 16)
GROWTH = 32
BN_SIZE = 4
INTENDED_USE = (
    "NON-CLINICAL DEMO with untrained (random) weights. Not a medical device; its outputs "
    "carry no diagnostic meaning. For testing the dicom-node pipeline only."
)


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


def build_demo_onnx(seed: int = DEMO_SEED, size: int = SIZE) -> onnx.ModelProto:
    """Build the demo model. Inputs ``image`` [N,1,size,size]; outputs ``logits`` [N,18]
    and ``cam`` [N,18,size,size] in [0, 1]."""
    rng = np.random.default_rng(seed)
    g = GraphBuilder(rng)
    feats, ch = _densenet121(g, "image")
    n = len(XRV_LABELS)
    # Small classifier weights keep the untrained logits in a readable range.
    w = (rng.standard_normal((n, ch, 1, 1)) * (0.5 / np.sqrt(ch))).astype(np.float32)
    b = (rng.standard_normal(n) * 0.5).astype(np.float32)
    cam_raw = g.op("Conv", [feats, g.const(w, "fc_w"), g.const(b, "fc_b")], "cam_raw",
                   kernel_shape=[1, 1])
    pooled = g.op("GlobalAveragePool", [cam_raw], "gap")
    g.op("Flatten", [pooled], outputs=["logits"], axis=1)
    # Upsample the CAM to the input size, then min-max per (image, label).
    shape = g.op("Shape", [cam_raw], "shape")
    nc = g.op("Slice", [shape, g.const(np.array([0], np.int64)), g.const(np.array([2], np.int64))],
              "nc")
    sizes = g.op("Concat", [nc, g.const(np.array([size, size], np.int64))], "sizes", axis=0)
    up = g.op("Resize", [cam_raw, "", "", sizes], "cam_up", mode="linear",
              coordinate_transformation_mode="half_pixel")
    lo = g.op("ReduceMin", [up], "cam_min", axes=[2, 3], keepdims=1)
    hi = g.op("ReduceMax", [up], "cam_max", axes=[2, 3], keepdims=1)
    span = g.op("Add", [g.op("Sub", [hi, lo], "span"), g.const(np.array(1e-6, np.float32))],
                "span_eps")
    g.op("Div", [g.op("Sub", [up, lo], "shifted"), span], outputs=["cam"])
    doc = f"{DEMO_NAME} {DEMO_VERSION}: {INTENDED_USE} seed={seed}"
    return g.model([tensor_info("image", ["N", 1, size, size])],
                   [tensor_info("logits", ["N", n]), tensor_info("cam", ["N", n, size, size])],
                   DEMO_NAME, doc)


def device_uid_for(onnx_bytes: bytes) -> str:
    """A 2.25 UID derived from the weights, so it changes whenever the weights change."""
    digest = hashlib.sha256(onnx_bytes).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def demo_manifest(device_uid: str) -> Manifest:
    """The demo package's manifest."""
    return Manifest(
        name=DEMO_NAME,
        version=DEMO_VERSION,
        manufacturer="dicom-node project (demo)",
        device_uid=device_uid,
        intended_use=INTENDED_USE,
        demo=True,
        onnx_file="model.onnx",
        applies_to=AppliesTo(modalities=["CR", "DX"], body_parts=["CHEST"],
                             view_positions=["PA", "AP"]),
        input=InputSpec(name="image", layout="NCHW", height=SIZE, width=SIZE, channels=1),
        preprocess=PreprocessSpec(
            window=WindowSpec(source="dataset"),
            resize="letterbox",
            # torchxrayvision's convention: pixel range [-1024, 1024].
            normalize=NormalizeSpec(scale=2048.0, offset=-1024.0, mean=[0.0], std=[1024.0]),
        ),
        output=OutputSpec(
            scores="logits", activation="sigmoid", heatmap="cam",
            labels=[LabelSpec(name=n, code=code_for(n), threshold=0.5) for n in XRV_LABELS],
        ),
        runtime=RuntimeSpec(max_batch_size=8),
    )


def ensure_demo_package(cache_dir: Path) -> Path:
    """Return the demo package dir under ``cache_dir``, building it on first use.

    The build goes to a temporary directory renamed into place, so concurrent callers
    and interrupted builds never leave a half-written package.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{DEMO_NAME}-{DEMO_VERSION}"
    if _cached_ok(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("building bundled demo model %s %s into %s", DEMO_NAME, DEMO_VERSION, target)
    data = build_demo_onnx().SerializeToString()
    tmp = Path(tempfile.mkdtemp(prefix=".demo-build-", dir=cache_dir))
    try:
        (tmp / "model.onnx").write_bytes(data)
        dump_manifest(demo_manifest(device_uid_for(data)), tmp / "model.yaml")
        if _cached_ok(target):  # another process finished first: keep its copy
            return target
        if target.exists():  # damaged entry (checked above): move it aside, then replace
            shutil.rmtree(target, ignore_errors=True)
        try:
            os.replace(tmp, target)
        except OSError:
            if not _cached_ok(target):  # lost a race and nothing usable is there
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _cached_ok(target: Path) -> bool:
    """True when ``target`` holds a complete demo package of this version."""
    if not ((target / "model.yaml").is_file() and (target / "model.onnx").is_file()):
        return False
    try:
        return load_manifest(target / "model.yaml").version == DEMO_VERSION
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        log.warning("demo package cache at %s is damaged; rebuilding", target)
        return False
