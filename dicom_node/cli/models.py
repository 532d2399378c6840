"""Command group: models (list, test, import-torchxrayvision)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import typer
from rich.console import Console
from rich.table import Table

from dicom_node.cli.common import CONFIG_OPT, DATA_DIR_OPT

app = typer.Typer(no_args_is_help=True, help="Model packages: list, test, import.")
console = Console()


def _registry(config: Path | None, data_dir: Path | None, only: Path | None = None):
    """The configured registry, or (``only``) just the package in that directory."""
    from dicom_node.cli.common import load_node_config
    from dicom_node.model_registry import load_registry

    return load_registry(load_node_config(config, data_dir), only=only)


@app.command("list")
def list_models(config: Path | None = CONFIG_OPT, data_dir: Path | None = DATA_DIR_OPT) -> None:
    """List loaded model packages and the packages that were refused (with file and field)."""
    registry = _registry(config, data_dir)
    try:
        table = Table(title="Model packages")
        for col in ("name", "version", "provider", "inputs", "labels", "status"):
            table.add_column(col)
        for name, model in sorted(registry.models.items()):
            m = model.manifest
            a = m.applies_to
            inputs = (
                f"{m.input.name} {m.input.layout} {m.input.channels}x{m.input.height}x"
                f"{m.input.width}; {'/'.join(a.modalities) or 'any'} "
                f"{'/'.join(a.body_parts) or ''}"
            ).strip()
            status = "ok (NON-CLINICAL DEMO)" if m.demo else "ok"
            table.add_row(
                name, m.version, model.provider, inputs, f"{len(m.output.labels)}", status
            )
        for err in registry.errors:
            table.add_row(str(err.path), "-", "-", "-", "-", f"[red]error: {err.message}[/red]")
        console.print(table)
    finally:
        registry.close()
    if registry.errors:
        raise typer.Exit(1)


def _write_png(path: Path, heat: np.ndarray) -> None:
    from PIL import Image

    Image.fromarray((np.clip(heat, 0, 1) * 255).round().astype(np.uint8), mode="L").save(path)


@app.command("test")
def test_model(
    package_or_name: str = typer.Argument(..., help="Package directory or loaded model name."),
    file: Path = typer.Argument(..., help="DICOM file to run."),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Write one heatmap PNG per label into this directory "
        "(created if needed). Without it no file is written.",
    ),
    as_json: bool = typer.Option(
        False, "--json", help="Print only the results, as JSON, on stdout (notes go to stderr)."
    ),
    config: Path | None = CONFIG_OPT,
    data_dir: Path | None = DATA_DIR_OPT,
) -> None:
    """Run one DICOM file through a model; print probabilities (and, with --out, write
    heatmap PNGs)."""
    import pydicom

    from ai.decode import DecodeError
    from ai.preprocess import PreprocessError

    # With --json, stdout carries the JSON document and nothing else.
    notes = Console(stderr=True) if as_json else console
    try:
        ds = pydicom.dcmread(file)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets a clear message
        notes.print(f"[red]{file}: not a readable DICOM file: {exc}[/red]")
        raise typer.Exit(2) from None
    as_dir = Path(package_or_name)
    is_dir = as_dir.is_dir()
    registry = _registry(config, data_dir, only=as_dir if is_dir else None)
    try:
        model = None
        if is_dir:
            model = next(iter(registry.models.values()), None)
            if model is None:
                msgs = [e.message for e in registry.errors] or ["not loaded"]
                notes.print(f"[red]package refused: {msgs[0]}[/red]")
                raise typer.Exit(2)
        else:
            try:
                model = registry.get(package_or_name)
            except KeyError as exc:
                notes.print(f"[red]{exc.args[0]}[/red]")
                raise typer.Exit(2) from None
        ok, reason = model.applies_to(ds)
        if not ok:
            notes.print(
                f"[yellow]note: the model's filters would not route this file: {reason}[/yellow]"
            )
        try:
            results = model.infer(ds)
        except (DecodeError, PreprocessError) as exc:
            notes.print(f"[red]{file}: {exc}[/red]")
            raise typer.Exit(2) from None
        pngs = _write_pngs(file, results, out) if out is not None else {}
        if as_json:
            _print_json(model, results, pngs)
            return
        if model.identity.demo:
            console.print("[bold yellow]NON-CLINICAL DEMO MODEL - untrained weights[/bold yellow]")
        for res in results:
            table = Table(
                title=f"{model.name} {model.identity.version} on {model.provider}: "
                f"{file.name}" + (f" frame {res.frame}" if res.frame else "")
            )
            for col in ("label", "code", "probability", "threshold", "decision", "heatmap"):
                table.add_column(col)
            for lab in res.labels:
                png = pngs.get((res.frame, lab.name), "-" if lab.heatmap is None else "")
                code = f"{lab.code.value} {lab.code.scheme}" if lab.code else "-"
                table.add_row(
                    lab.name,
                    code,
                    f"{lab.probability:.4f}",
                    f"{lab.threshold:.2f}",
                    "POSITIVE" if lab.positive else "negative",
                    png,
                )
            console.print(table)
        if out is not None:
            console.print(f"heatmaps written to {out.resolve()}")
        else:
            console.print("no heatmap PNGs written; add --out DIR to write them")
    finally:
        registry.close()


def _write_pngs(file: Path, results, out: Path) -> dict[tuple[int | None, str], str]:
    """One PNG per (frame, label) with a heatmap, into ``out``; their paths by key."""
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    for res in results:
        for lab in res.labels:
            if lab.heatmap is None:
                continue
            safe = "".join(c if c.isalnum() else "_" for c in lab.name)
            suffix = f"_f{res.frame}" if res.frame else ""
            path = out / f"{Path(file).stem}{suffix}_{safe}.png"
            _write_png(path, lab.heatmap)
            written[(res.frame, lab.name)] = str(path)
    return written


def _print_json(model, results, pngs) -> None:  # ai Model, list[ImageResult]
    import json

    typer.echo(json.dumps(results_document(model, results, pngs), indent=2))


def results_document(model, results, pngs=None) -> dict:  # ai Model, list[ImageResult]
    """The model's identity and every label's probability and decision, JSON-ready (the
    ``--json`` output, and the admin API's answer); ``heatmap_png`` is the PNG written
    with ``--out`` (null otherwise)."""
    pngs = pngs or {}
    return {
        "model": {
            "name": model.name,
            "version": model.identity.version,
            "device_uid": model.identity.device_uid,
            "demo": model.identity.demo,
            "provider": model.provider,
        },
        "images": [{"sop_instance_uid": r.sop_instance_uid, "frame": r.frame} for r in results],
        "labels": [
            {
                "name": lab.name,
                "frame": r.frame,
                "probability": float(lab.probability),
                "threshold": float(lab.threshold),
                "positive": bool(lab.positive),
                "code": None
                if lab.code is None
                else {
                    "value": lab.code.value,
                    "scheme": lab.code.scheme,
                    "meaning": lab.code.meaning,
                },
                "heatmap_png": pngs.get((r.frame, lab.name)),
            }
            for r in results
            for lab in r.labels
        ],
    }


@app.command("import-torchxrayvision")
def import_torchxrayvision(
    name: str = typer.Argument(
        ..., help="torchxrayvision weights name, e.g. densenet121-res224-all"
    ),
    out: Path = typer.Option(..., "--out", help="Package directory to write."),
    untrained: bool = typer.Option(
        False,
        "--untrained",
        help="Export the architecture with random weights "
        "(offline testing; marks the package as demo).",
    ),
) -> None:
    """Export a torchxrayvision model to a package (ONNX + CAM output + label codes)."""
    try:
        from ai.importers.torchxrayvision import ImporterUnavailable, import_model
    except ImportError as exc:
        console.print(f"[red]importer unavailable: {exc}[/red]")
        raise typer.Exit(2) from None
    try:
        path = import_model(name, out, untrained=untrained)
    except ImporterUnavailable as exc:
        console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    console.print(f"package written to {path}")
