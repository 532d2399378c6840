"""Export a torchxrayvision DenseNet to a model package with an in-graph CAM output.

Needs the ``torch`` extra plus ``torchxrayvision``. With ``untrained=True`` the
architecture is exported with random weights (no download; used by the offline test).
The exported graph outputs ``logits`` [N, L] (sigmoid applied by the runtime; the
decision thresholds are xrv's operating points where the weights define them) and
``cam`` [N, L, H, W]: the classifier applied at every position of the last feature map,
upsampled to the input size and min-max scaled to [0, 1] per label.
"""

from __future__ import annotations

import hashlib
import importlib
import tempfile
from pathlib import Path

from ai.labels import code_for
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
)


class ImporterUnavailable(RuntimeError):
    """torch / torchxrayvision cannot be imported, or the weights cannot be had."""


def _define_missing_torchvision_ops(torch) -> None:  # torch module
    """Let torchvision import when its compiled ops cannot load.

    With a CUDA-only torchvision wheel next to CPU torch, its import registers fake
    kernels for ``nms``/``qnms`` and fails if those operators were never defined. xrv's
    DenseNet never calls them.
    """
    try:
        torch.ops.torchvision.nms  # noqa: B018 - probe
        return
    except (AttributeError, RuntimeError):
        pass
    lib = torch.library.Library("torchvision", "DEF")  # keep definitions alive
    lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _define_missing_torchvision_ops.lib = lib  # type: ignore[attr-defined]


def load_xrv():
    """Import torch and torchxrayvision, or raise ImporterUnavailable saying why."""
    try:
        torch = importlib.import_module("torch")
    except ImportError as exc:
        raise ImporterUnavailable(f"torch is not installed (pip install .[torch]): {exc}") from exc
    try:
        importlib.import_module("torchvision")
    except ImportError as exc:
        raise ImporterUnavailable(f"torchvision is not installed: {exc}") from exc
    except RuntimeError:
        _define_missing_torchvision_ops(torch)
    try:
        xrv = importlib.import_module("torchxrayvision")
    except Exception as exc:  # any import failure means unavailable
        raise ImporterUnavailable(f"torchxrayvision cannot be imported: {exc}") from exc
    return torch, xrv


def build_xrv_model(name: str, untrained: bool):
    """Build the xrv DenseNet for weights ``name`` (random weights if ``untrained``)."""
    torch, xrv = load_xrv()
    if not name.startswith("densenet"):
        raise ImporterUnavailable(f"only xrv DenseNet weights are supported, not {name!r}")
    if untrained:
        torch.manual_seed(0)
        model = xrv.models.DenseNet(weights=None)
    else:
        try:
            model = xrv.models.DenseNet(weights=name)
        except Exception as exc:  # download/cache failures
            raise ImporterUnavailable(f"cannot load xrv weights {name!r}: {exc}") from exc
    return model.eval()


def cam_wrapper(model, size: int):  # torch types are optional
    """Wrap an xrv DenseNet in a torch module returning (logits, cam)."""
    torch = importlib.import_module("torch")
    nn = torch.nn
    functional = torch.nn.functional

    class CamWrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.features = model.features
            w = model.classifier.weight.detach()
            self.cam_conv = nn.Conv2d(w.shape[1], w.shape[0], kernel_size=1, bias=True)
            with torch.no_grad():
                self.cam_conv.weight.copy_(w[:, :, None, None])
                self.cam_conv.bias.copy_(model.classifier.bias.detach())

        def forward(self, x):
            feats = functional.relu(self.features(x))
            cam = self.cam_conv(feats)
            logits = cam.mean(dim=(2, 3))
            up = functional.interpolate(
                cam, size=(size, size), mode="bilinear", align_corners=False
            )
            lo = up.amin(dim=(2, 3), keepdim=True)
            hi = up.amax(dim=(2, 3), keepdim=True)
            return logits, (up - lo) / (hi - lo + 1e-6)

    return CamWrapper().eval()


def reference_logits(model, x):
    """Run xrv's own forward pass, returning logits (before any sigmoid/op_norm)."""
    torch = importlib.import_module("torch")
    with torch.no_grad():
        feats = torch.nn.functional.relu(model.features(x))
        pooled = torch.nn.functional.adaptive_avg_pool2d(feats, (1, 1)).flatten(1)
        return model.classifier(pooled)


def import_model(name: str, out: Path, untrained: bool = False, size: int = 224) -> Path:
    """Export a torchxrayvision DenseNet into a model package.

    Parameters
    ----------
    name : str
        The xrv weights, e.g. ``"densenet121-res224-all"``.
    out : pathlib.Path
        The package directory to write (created if missing).
    untrained : bool
        Random weights instead of downloading the trained ones (tests, demos).
    size : int
        The model's square input size in pixels.

    Returns
    -------
    pathlib.Path
        ``out``, holding ``model.yaml`` and ``model.onnx``.

    Raises
    ------
    ImporterUnavailable
        torch or torchxrayvision cannot be imported, the weights cannot be had, or
        ``name`` is not a DenseNet.
    """
    torch, _ = load_xrv()
    model = build_xrv_model(name, untrained)
    wrapper = cam_wrapper(model, size)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    onnx_path = out / "model.onnx"
    dummy = torch.zeros(1, 1, size, size)
    with tempfile.TemporaryDirectory():
        torch.onnx.export(
            wrapper,
            (dummy,),
            str(onnx_path),
            input_names=["image"],
            output_names=["logits", "cam"],
            opset_version=17,
            dynamic_axes={"image": {0: "N"}, "logits": {0: "N"}, "cam": {0: "N"}},
            dynamo=False,
        )
    data = onnx_path.read_bytes()
    targets = list(getattr(model, "targets", []) or getattr(model, "pathologies", []))
    op = getattr(model, "op_threshs", None)
    thresholds = [float(t) for t in op.tolist()] if op is not None else [0.5] * len(targets)
    labels = []
    for i, label in enumerate(targets):
        name_i = label or f"unused_{i}"
        labels.append(
            LabelSpec(
                name=name_i,
                code=code_for(name_i),
                threshold=min(max(thresholds[i], 0.0), 1.0)
                if thresholds[i] == thresholds[i]
                else 0.5,
            )
        )
    untrained_note = (
        "UNTRAINED architecture export (random weights) - NON-CLINICAL TEST PACKAGE. "
        if untrained
        else ""
    )
    manifest = Manifest(
        name=f"xrv-{name}" + ("-untrained" if untrained else ""),
        version=f"xrv-{importlib.import_module('torchxrayvision').__version__}",
        manufacturer="torchxrayvision (exported by dicom-node)",
        device_uid="2.25." + str(int.from_bytes(hashlib.sha256(data).digest()[:16], "big")),
        intended_use=untrained_note + "Research model from torchxrayvision; not a medical "
        "device; not for clinical use.",
        demo=untrained,
        applies_to=AppliesTo(modalities=["CR", "DX"], body_parts=["CHEST"]),
        input=InputSpec(name="image", layout="NCHW", height=size, width=size, channels=1),
        preprocess=PreprocessSpec(
            window=WindowSpec(source="dataset"),
            resize="letterbox",
            normalize=NormalizeSpec(scale=2048.0, offset=-1024.0),
        ),
        output=OutputSpec(scores="logits", activation="sigmoid", heatmap="cam", labels=labels),
        runtime=RuntimeSpec(max_batch_size=8),
    )
    dump_manifest(manifest, out / "model.yaml")
    return out
