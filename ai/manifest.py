"""The model package manifest (``model.yaml``): a pydantic model with file+field errors."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

MANIFEST_NAME = "model.yaml"


class ManifestError(ValueError):
    """A manifest or package problem; ``str()`` names the file and the field path.

    Parameters
    ----------
    file : path-like
        The manifest (or package file) at fault.
    field : str
        The dotted field path, e.g. ``"output.labels.0.code"``; empty for the file.
    message : str
        What is wrong.
    """

    def __init__(self, file: Path | str, field: str, message: str) -> None:
        self.file = str(file)
        self.field = field
        self.message = message
        super().__init__(f"{self.file}: {field}: {message}" if field else f"{self.file}: {message}")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CodeSpec(_Strict):
    """A coded concept for the SR: SNOMED CT (``SCT``), ``DCM`` or a private ``99`` scheme."""

    value: str = Field(min_length=1)
    scheme: str = Field(min_length=1)
    meaning: str = Field(min_length=1)


class LabelSpec(_Strict):
    """One output label: its name, code and decision threshold."""

    name: str = Field(min_length=1)
    code: CodeSpec | None = None
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)


class AppliesTo(_Strict):
    """Which source images a model accepts; an empty list accepts anything."""

    modalities: list[str] = Field(default_factory=list)
    body_parts: list[str] = Field(default_factory=list)
    view_positions: list[str] = Field(default_factory=list)
    photometric_interpretations: list[str] = Field(
        default_factory=lambda: ["MONOCHROME1", "MONOCHROME2"]
    )


class InputSpec(_Strict):
    """The model's input tensor."""

    name: str = Field(min_length=1)
    layout: Literal["NCHW", "NHWC"] = "NCHW"
    height: int = Field(gt=0)
    width: int = Field(gt=0)
    channels: Literal[1, 3] = 1
    dtype: Literal["float32"] = "float32"


class WindowSpec(_Strict):
    """Windowing: the dataset's own VOI LUT / window, a fixed window, or the full range."""

    source: Literal["dataset", "fixed", "minmax"] = "dataset"
    center: float | None = None
    width: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _fixed_needs_values(self) -> WindowSpec:
        if self.source == "fixed" and (self.center is None or self.width is None):
            raise ValueError("source 'fixed' needs center and width")
        return self


class NormalizeSpec(_Strict):
    """After windowing pixels are in [0, 1]; then ``x * scale + offset``, then ``(x-mean)/std``."""

    scale: float = 1.0
    offset: float = 0.0
    mean: list[float] = Field(default_factory=lambda: [0.0])
    std: list[float] = Field(default_factory=lambda: [1.0])

    @model_validator(mode="after")
    def _std_positive(self) -> NormalizeSpec:
        if any(s <= 0 for s in self.std):
            raise ValueError("std values must be > 0")
        return self


class PreprocessSpec(_Strict):
    """How a DICOM frame becomes the input tensor."""

    window: WindowSpec = Field(default_factory=WindowSpec)
    resize: Literal["letterbox", "stretch"] = "letterbox"
    normalize: NormalizeSpec = Field(default_factory=NormalizeSpec)


class OutputSpec(_Strict):
    """The score output and the optional heatmap (CAM) output."""

    scores: str = Field(min_length=1)
    activation: Literal["sigmoid", "softmax", "none"] = "sigmoid"
    heatmap: str | None = None
    labels: list[LabelSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_labels(self) -> OutputSpec:
        names = [label.name for label in self.labels]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"duplicate label names: {dupes}")
        return self


class RuntimeSpec(_Strict):
    """Batching hints of the package (the node's config may override them)."""

    max_batch_size: int = Field(default=8, ge=1)


class Manifest(_Strict):
    """A model package manifest."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    version: str = Field(min_length=1)
    manufacturer: str = Field(min_length=1)
    device_uid: str = Field(pattern=r"^[0-9]+(\.[0-9]+)*$", max_length=64)
    intended_use: str = Field(min_length=1)
    demo: bool = False
    onnx_file: str = "model.onnx"
    applies_to: AppliesTo = Field(default_factory=AppliesTo)
    input: InputSpec
    preprocess: PreprocessSpec = Field(default_factory=PreprocessSpec)
    output: OutputSpec
    runtime: RuntimeSpec = Field(default_factory=RuntimeSpec)

    @model_validator(mode="after")
    def _channels_match_normalize(self) -> Manifest:
        n = self.input.channels
        for key in ("mean", "std"):
            values = getattr(self.preprocess.normalize, key)
            if len(values) not in (1, n):
                raise ValueError(f"preprocess.normalize.{key} needs 1 or {n} values")
        return self


def _loc(loc: tuple[int | str, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts)


def parse_manifest(data: object, file: Path | str) -> Manifest:
    """Validate parsed YAML as a manifest.

    Parameters
    ----------
    data : object
        The parsed ``model.yaml``.
    file : path-like
        The file it came from, for the error message.

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        ``data`` is not a mapping or a field is invalid (the first one is named, with a
        count of the others).
    """
    if not isinstance(data, dict):
        raise ManifestError(file, "", "manifest must be a mapping")
    try:
        return Manifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        more = f" (and {len(exc.errors()) - 1} more)" if len(exc.errors()) > 1 else ""
        raise ManifestError(file, _loc(tuple(err["loc"])), err["msg"] + more) from None


def load_manifest(path: Path) -> Manifest:
    """Read and validate a ``model.yaml``.

    Parameters
    ----------
    path : pathlib.Path
        The manifest file.

    Returns
    -------
    Manifest

    Raises
    ------
    ManifestError
        The file is missing, not YAML, or a field is invalid; the message names the
        file and the field path.
    """
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ManifestError(path, "", "file not found") from None
    except yaml.YAMLError as exc:
        raise ManifestError(path, "", f"invalid YAML: {exc}") from None
    return parse_manifest(data, path)


def dump_manifest(manifest: Manifest, path: Path) -> None:
    """Write ``manifest`` as YAML to ``path``."""
    Path(path).write_text(
        yaml.safe_dump(manifest.model_dump(mode="json"), sort_keys=False, allow_unicode=True)
    )
