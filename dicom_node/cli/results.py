"""Command group: results — look at the result objects the node writes."""

from __future__ import annotations

from pathlib import Path

import typer
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from rich.console import Console
from rich.tree import Tree

app = typer.Typer(no_args_is_help=True, help="Inspect result objects (SR, SC).")

SR_SOP_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.88.11": "Basic Text SR",
    "1.2.840.10008.5.1.4.1.1.88.22": "Enhanced SR",
    "1.2.840.10008.5.1.4.1.1.88.33": "Comprehensive SR",
    "1.2.840.10008.5.1.4.1.1.88.34": "Comprehensive 3D SR",
    "1.2.840.10008.5.1.4.1.1.88.59": "Key Object Selection",
}


def _code(item: Dataset | None) -> str:
    if item is None:
        return "?"
    return (
        f"{item.get('CodeMeaning', '?')} ({item.get('CodeValue', '?')}, "
        f"{item.get('CodingSchemeDesignator', '?')})"
    )


def _first(ds: Dataset, keyword: str) -> Dataset | None:
    seq = ds.get(keyword)
    return seq[0] if seq else None


def _value(item: Dataset) -> str:
    """The value of one SR content item as text."""
    kind = item.get("ValueType", "")
    if kind == "CODE":
        return _code(_first(item, "ConceptCodeSequence"))
    if kind == "NUM":
        measured = _first(item, "MeasuredValueSequence")
        if measured is None:
            return "(no value)"
        unit = _first(measured, "MeasurementUnitsCodeSequence")
        unit_text = unit.get("CodeValue", "") if unit is not None else ""
        return f"{measured.get('NumericValue', '?')} [{unit_text}]"
    if kind in ("TEXT", "DATETIME", "DATE", "TIME", "PNAME", "UIDREF"):
        for keyword in ("TextValue", "DateTime", "Date", "Time", "PersonName", "UID"):
            if keyword in item:
                return str(item[keyword].value)
    if kind in ("IMAGE", "COMPOSITE"):
        ref = _first(item, "ReferencedSOPSequence")
        if ref is not None:
            frames = ref.get("ReferencedFrameNumber")
            suffix = f" frame {frames}" if frames else ""
            return f"{ref.get('ReferencedSOPInstanceUID', '?')}{suffix}"
    if kind == "CONTAINER":
        return ""
    return f"<{kind}>"


def _add_items(node: Tree, items: list[Dataset]) -> None:
    for item in items:
        name = _first(item, "ConceptNameCodeSequence")
        meaning = name.get("CodeMeaning", "?") if name is not None else "?"
        kind = item.get("ValueType", "?")
        value = _value(item)
        style = "bold" if kind == "CONTAINER" else ""
        label = f"[{style}]{meaning}[/{style}]" if style else meaning
        text = f"{label} [dim]{kind}[/dim]" + (f": {value}" if value else "")
        child = node.add(text)
        _add_items(child, list(item.get("ContentSequence", [])))


def _header(tree: Tree, ds: Dataset) -> None:
    header = tree.add("[bold]Header[/bold]")
    for keyword in (
        "PatientName",
        "PatientID",
        "StudyInstanceUID",
        "AccessionNumber",
        "SeriesDescription",
        "SeriesNumber",
        "SOPInstanceUID",
        "Manufacturer",
        "ContentDate",
        "ContentTime",
        "CompletionFlag",
        "VerificationFlag",
        "PreliminaryFlag",
        "ImageType",
        "BurnedInAnnotation",
        "PhotometricInterpretation",
        "Rows",
        "Columns",
        "PixelSpacing",
        "PatientOrientation",
    ):
        if keyword in ds:
            header.add(f"{keyword}: {ds[keyword].value}")
    for item in ds.get("ContributingEquipmentSequence", []):
        purpose = _first(item, "PurposeOfReferenceCodeSequence")
        header.add(
            f"Contributing equipment: {_code(purpose)} — {item.get('Manufacturer', '')} "
            f"{item.get('ManufacturerModelName', '')} {item.get('SoftwareVersions', '')} "
            f"device {item.get('DeviceUID', '-')}"
        )


def _evidence(tree: Tree, ds: Dataset) -> None:
    for keyword in ("CurrentRequestedProcedureEvidenceSequence", "PertinentOtherEvidenceSequence"):
        if keyword not in ds:
            continue
        node = tree.add(f"[bold]{keyword}[/bold]")
        for study in ds[keyword].value:
            for series in study.get("ReferencedSeriesSequence", []):
                for ref in series.get("ReferencedSOPSequence", []):
                    node.add(f"{ref.ReferencedSOPInstanceUID} (series {series.SeriesInstanceUID})")


def _sources(tree: Tree, ds: Dataset) -> None:
    if "SourceImageSequence" not in ds:
        return
    node = tree.add("[bold]Source images[/bold]")
    for ref in ds.SourceImageSequence:
        purpose = _first(ref, "PurposeOfReferenceCodeSequence")
        node.add(f"{ref.ReferencedSOPInstanceUID} — {_code(purpose)}")


def describe(ds: Dataset, title: str) -> Tree:
    """A rich Tree describing an SR (content tree) or any other object (header)."""
    sop_class = str(ds.get("SOPClassUID", ""))
    kind = SR_SOP_CLASSES.get(sop_class, getattr(ds.get("SOPClassUID"), "name", sop_class))
    tree = Tree(f"[bold]{title}[/bold] — {kind}")
    _header(tree, ds)
    if sop_class in SR_SOP_CLASSES:
        root_name = _first(ds, "ConceptNameCodeSequence")
        root = tree.add(f"[bold]{_code(root_name)}[/bold]")
        _add_items(root, list(ds.get("ContentSequence", [])))
        _evidence(tree, ds)
    _sources(tree, ds)
    return tree


@app.command("render")
def render(
    files: list[Path] = typer.Argument(..., help="DICOM files (SR, SC) to show."),
) -> None:
    """Print result objects as readable trees: findings, probabilities, codes, evidence."""
    console = Console()
    failed = False
    for path in files:
        try:
            ds = dcmread(path, stop_before_pixels=True)
        except (InvalidDicomError, OSError, ValueError) as exc:
            typer.echo(f"{path}: not a readable DICOM file: {exc}", err=True)
            failed = True
            continue
        if "SOPClassUID" not in ds:
            typer.echo(f"{path}: no SOPClassUID; not a DICOM instance", err=True)
            failed = True
            continue
        console.print(describe(ds, path.name))
    if failed:
        raise typer.Exit(code=2)
