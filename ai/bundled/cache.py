"""The bundled demo package on disk: its manifest, Device UID and build-once cache.

Importing this does not import ``onnx``: a node whose cache already holds the package
never loads it; the graph builder (:mod:`ai.bundled.demo_cxr`) is imported only to
build (tests/test_memory.py checks both).
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path

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
SIZE = 224
INTENDED_USE = (
    "NON-CLINICAL DEMO with untrained (random) weights. Not a medical device; its outputs "
    "carry no diagnostic meaning. For testing the dicom-node pipeline only."
)


def device_uid_for(onnx_bytes: bytes) -> str:
    """Derive a 2.25 UID from the weights, so it changes whenever the weights change."""
    digest = hashlib.sha256(onnx_bytes).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def demo_manifest(device_uid: str) -> Manifest:
    """Return the demo package's manifest.

    Parameters
    ----------
    device_uid : str
        The Device UID of the weights (see :func:`device_uid_for`).

    Returns
    -------
    ai.manifest.Manifest
        The manifest of the bundled demo model, marked as a non-clinical demo.
    """
    return Manifest(
        name=DEMO_NAME,
        version=DEMO_VERSION,
        manufacturer="dicom-node project (demo)",
        device_uid=device_uid,
        intended_use=INTENDED_USE,
        demo=True,
        onnx_file="model.onnx",
        applies_to=AppliesTo(
            modalities=["CR", "DX"], body_parts=["CHEST"], view_positions=["PA", "AP"]
        ),
        input=InputSpec(name="image", layout="NCHW", height=SIZE, width=SIZE, channels=1),
        preprocess=PreprocessSpec(
            window=WindowSpec(source="dataset"),
            resize="letterbox",
            # torchxrayvision's convention: pixel range [-1024, 1024].
            normalize=NormalizeSpec(scale=2048.0, offset=-1024.0, mean=[0.0], std=[1024.0]),
        ),
        output=OutputSpec(
            scores="logits",
            activation="sigmoid",
            heatmap="cam",
            labels=[LabelSpec(name=n, code=code_for(n), threshold=0.5) for n in XRV_LABELS],
        ),
        runtime=RuntimeSpec(max_batch_size=8),
    )


def ensure_demo_package(cache_dir: Path) -> Path:
    """Return the demo package dir under ``cache_dir``, building it on first use.

    The build goes to a temporary directory renamed into place, so concurrent callers
    and interrupted builds never leave a half-written package.

    Parameters
    ----------
    cache_dir : pathlib.Path
        Where built packages are kept (created if missing).

    Returns
    -------
    pathlib.Path
        The package directory (``model.yaml`` and ``model.onnx``).

    Raises
    ------
    OSError
        The cache directory cannot be written.
    """
    cache_dir = Path(cache_dir)
    target = cache_dir / f"{DEMO_NAME}-{DEMO_VERSION}"
    if _cached_ok(target):
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    log.info("building bundled demo model %s %s into %s", DEMO_NAME, DEMO_VERSION, target)
    from ai.bundled.demo_cxr import build_demo_bytes  # late: onnx only when building

    data = build_demo_bytes()
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
    """Tell whether ``target`` holds a complete demo package of this version."""
    if not ((target / "model.yaml").is_file() and (target / "model.onnx").is_file()):
        return False
    try:
        return load_manifest(target / "model.yaml").version == DEMO_VERSION
    except Exception:  # noqa: BLE001 - a damaged cache entry is rebuilt
        log.warning("demo package cache at %s is damaged; rebuilding", target)
        return False
