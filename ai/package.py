"""A model package on disk: manifest + ONNX file, validated against each other."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ai.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest
from ai.session import RuntimeOptions, Session


@dataclass(frozen=True)
class Package:
    """A validated package: where it lives, its manifest and its open session."""

    path: Path
    manifest: Manifest
    session: Session


def _static(dim: object) -> int | None:
    return dim if isinstance(dim, int) and dim > 0 else None


def validate_against_session(manifest: Manifest, session: Session, manifest_path: Path) -> None:
    """Check that the manifest's tensors exist in the ONNX graph with compatible shapes."""
    inputs = {a.name: a for a in session.inputs}
    outputs = {a.name: a for a in session.outputs}
    spec = manifest.input
    if spec.name not in inputs:
        raise ManifestError(
            manifest_path,
            "input.name",
            f"{spec.name!r} is not an input of the ONNX graph (inputs: {sorted(inputs)})",
        )
    extra = sorted(set(inputs) - {spec.name})
    if extra:
        raise ManifestError(
            manifest_path,
            "input.name",
            f"the ONNX graph has other inputs the runtime cannot feed: {extra}",
        )
    arg = inputs[spec.name]
    if arg.type != "tensor(float)":
        raise ManifestError(manifest_path, "input.dtype", f"graph input is {arg.type}")
    shape = list(arg.shape)
    if len(shape) != 4:
        raise ManifestError(
            manifest_path,
            "input.layout",
            f"graph input {spec.name!r} has rank {len(shape)}, expected 4",
        )
    expect = (
        [spec.channels, spec.height, spec.width]
        if spec.layout == "NCHW"
        else [spec.height, spec.width, spec.channels]
    )
    fields = (
        ["input.channels", "input.height", "input.width"]
        if spec.layout == "NCHW"
        else ["input.height", "input.width", "input.channels"]
    )
    for dim, want, fld in zip(shape[1:], expect, fields, strict=True):
        if _static(dim) is not None and dim != want:
            raise ManifestError(
                manifest_path, fld, f"manifest says {want}, ONNX input shape is {shape}"
            )
    batch = _static(shape[0])
    if batch is not None and batch < manifest.runtime.max_batch_size:
        raise ManifestError(
            manifest_path,
            "runtime.max_batch_size",
            f"{manifest.runtime.max_batch_size} exceeds the graph's fixed batch size {batch}",
        )
    n_labels = len(manifest.output.labels)
    out = manifest.output
    if out.scores not in outputs:
        raise ManifestError(
            manifest_path,
            "output.scores",
            f"{out.scores!r} is not an output of the ONNX graph (outputs: {sorted(outputs)})",
        )
    sshape = list(outputs[out.scores].shape)
    if len(sshape) != 2 or (_static(sshape[1]) is not None and sshape[1] != n_labels):
        raise ManifestError(
            manifest_path,
            "output.labels",
            f"{n_labels} labels but output {out.scores!r} has shape {sshape}",
        )
    if out.heatmap is not None:
        if out.heatmap not in outputs:
            raise ManifestError(
                manifest_path,
                "output.heatmap",
                f"{out.heatmap!r} is not an output of the ONNX graph (outputs: {sorted(outputs)})",
            )
        hshape = list(outputs[out.heatmap].shape)
        if len(hshape) != 4 or (_static(hshape[1]) is not None and hshape[1] != n_labels):
            raise ManifestError(
                manifest_path,
                "output.heatmap",
                f"expected [N, {n_labels}, H, W], graph has {hshape}",
            )


def load_package(path: Path, options: RuntimeOptions) -> Package:
    """Load and validate the package in directory ``path``; raise ManifestError on problems."""
    path = Path(path)
    manifest_path = path / MANIFEST_NAME
    if not path.is_dir():
        raise ManifestError(path, "", "package directory not found")
    manifest = load_manifest(manifest_path)
    onnx_path = path / manifest.onnx_file
    if not onnx_path.is_file():
        raise ManifestError(manifest_path, "onnx_file", f"{onnx_path} not found")
    try:
        session = Session(onnx_path, options)
    except Exception as exc:  # ORT raises its own exception types for bad graphs
        raise ManifestError(onnx_path, "", f"ONNX Runtime cannot load it: {exc}") from exc
    validate_against_session(manifest, session, manifest_path)
    return Package(path=path, manifest=manifest, session=session)
