"""The header facts routing looks at, per instance and per group.

Build them from pydicom datasets (read with ``stop_before_pixels``), from files, or from
plain values (e.g. rows of the instance index)::

    InstanceFacts(sop_instance_uid=..., sop_class_uid=..., series_uid=..., modality="CR",
                  view_position="PA", image_type=("ORIGINAL", "PRIMARY"), rows=2048, ...)
    GroupFacts(instances=(...), called_ae="DICOM_NODE", calling_ae="PACS")
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

__all__ = [
    "GroupFacts",
    "InstanceFacts",
    "SeriesFacts",
    "UnreadableFile",
    "facts_by_series",
    "read_instance_facts",
]

# View Code Sequence (0054,0220) codes -> View Position, for DX objects lacking (0018,5101).
_VIEW_CODES = {
    "399214001": "PA",  # postero-anterior
    "399348003": "AP",  # antero-posterior
    "399198007": "RL",  # right lateral
    "399173006": "LL",  # left lateral
}

# Only these tags are needed; reading stops before pixel data anyway.
_TAGS = [
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "Modality",
    "BodyPartExamined",
    "SeriesDescription",
    "ViewPosition",
    "ViewCodeSequence",
    "ImageType",
    "Rows",
    "Columns",
]


def _text(ds: Dataset, keyword: str) -> str:
    value = ds.get(keyword)
    return "" if value is None else str(value).strip()


@dataclass(frozen=True)
class InstanceFacts:
    """Header attributes of one instance that rules can match on.

    Code-string values keep their original case; matching is case-insensitive.
    """

    sop_instance_uid: str
    sop_class_uid: str = ""
    series_uid: str = ""
    modality: str = ""
    body_part: str = ""
    series_description: str = ""
    view_position: str = ""
    image_type: tuple[str, ...] = ()
    rows: int | None = None
    columns: int | None = None
    path: Path | None = None
    study_uid: str = ""

    @classmethod
    def from_dataset(cls, ds: Dataset, path: Path | str | None = None) -> InstanceFacts:
        """Facts from a dataset (pixel data not needed)."""
        view = _text(ds, "ViewPosition")
        if not view:
            for item in ds.get("ViewCodeSequence") or []:
                view = _VIEW_CODES.get(str(item.get("CodeValue", "")).strip(), "")
                if view:
                    break
        image_type = ds.get("ImageType")
        if image_type is None:
            types: tuple[str, ...] = ()
        elif isinstance(image_type, str):
            types = tuple(v.strip() for v in image_type.split("\\"))
        else:
            types = tuple(str(v).strip() for v in image_type)
        rows, cols = ds.get("Rows"), ds.get("Columns")
        return cls(
            sop_instance_uid=_text(ds, "SOPInstanceUID"),
            sop_class_uid=_text(ds, "SOPClassUID"),
            series_uid=_text(ds, "SeriesInstanceUID"),
            study_uid=_text(ds, "StudyInstanceUID"),
            modality=_text(ds, "Modality"),
            body_part=_text(ds, "BodyPartExamined"),
            series_description=_text(ds, "SeriesDescription"),
            view_position=view,
            image_type=types,
            rows=int(rows) if rows is not None else None,
            columns=int(cols) if cols is not None else None,
            path=Path(path) if path is not None else None,
        )

    @classmethod
    def from_file(cls, path: Path | str) -> InstanceFacts:
        """Read ``path``'s header (no pixel data). Raises :class:`UnreadableFile`."""
        try:
            ds = dcmread(path, stop_before_pixels=True, specific_tags=_TAGS)
        except (InvalidDicomError, OSError, ValueError, EOFError) as exc:
            raise UnreadableFile(Path(path), str(exc)) from exc
        if "SOPInstanceUID" not in ds:
            raise UnreadableFile(Path(path), "no SOP Instance UID (0008,0018)")
        return cls.from_dataset(ds, path)


class UnreadableFile(Exception):
    """A file that is not DICOM or lacks the attributes routing needs."""

    def __init__(self, path: Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


@dataclass(frozen=True)
class GroupFacts:
    """A completed group (a study or a series) as routing sees it.

    ``called_ae``/``calling_ae`` are the AE titles of the associations that brought the
    instances in (empty when unknown, e.g. files on disk). ``key`` names the group in
    logs and reports (e.g. the Study Instance UID).
    """

    instances: tuple[InstanceFacts, ...]
    called_ae: str = ""
    calling_ae: str = ""
    key: str = ""

    def __post_init__(self) -> None:
        object.__setattr__(self, "instances", tuple(self.instances))

    @classmethod
    def from_datasets(cls, datasets: Iterable[Dataset], **group: str) -> GroupFacts:
        """A group from in-memory datasets."""
        return cls(tuple(InstanceFacts.from_dataset(ds) for ds in datasets), **group)

    @classmethod
    def from_paths(cls, paths: Iterable[Path | str], **group: str) -> GroupFacts:
        """A group from files (raises :class:`UnreadableFile` on the first bad one)."""
        return cls(tuple(InstanceFacts.from_file(p) for p in paths), **group)

    def series(self) -> dict[str, tuple[InstanceFacts, ...]]:
        """Instances per Series Instance UID, in first-seen order."""
        out: dict[str, list[InstanceFacts]] = defaultdict(list)
        for inst in self.instances:
            out[inst.series_uid].append(inst)
        return {k: tuple(v) for k, v in out.items()}


SeriesFacts = GroupFacts
"""A series is a group too (``route explain`` and per-series grouping use it)."""


def read_instance_facts(
    paths: Sequence[Path],
) -> tuple[list[InstanceFacts], list[UnreadableFile]]:
    """Read every path; return the readable instances and the unreadable files."""
    good: list[InstanceFacts] = []
    bad: list[UnreadableFile] = []
    for path in paths:
        try:
            good.append(InstanceFacts.from_file(path))
        except UnreadableFile as exc:
            bad.append(exc)
    return good, bad


def facts_by_series(
    instances: Iterable[InstanceFacts], called_ae: str = "", calling_ae: str = ""
) -> list[GroupFacts]:
    """One group per Series Instance UID (keyed by it), in first-seen order."""
    series: dict[str, list[InstanceFacts]] = defaultdict(list)
    for inst in instances:
        series[inst.series_uid].append(inst)
    return [
        GroupFacts(tuple(items), called_ae=called_ae, calling_ae=calling_ae, key=uid)
        for uid, items in series.items()
    ]
