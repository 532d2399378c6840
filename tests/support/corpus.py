"""The real-world corpus: pydicom's bundled test files and the ``pydicom-data`` package.

Each image goes through the real demo model (a copy of the bundled package whose input
filters are emptied, so that anything the runtime can read is inferred) and the real
result writers; every object written is checked with dciodvfy. A result error counts
against the node unless it repeats an error the source itself has on a value the result
must carry unchanged to stay in the study and to reference its source (Study Instance
UID, Patient ID, and the source's own SOP/Series Instance UID in references).
Used by ``tests/sr_writer/test_corpus.py`` and ``scripts/corpus_report.py``.
"""

from __future__ import annotations

import logging
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from pydicom import dcmread
from pydicom.dataset import Dataset

from tests.support.dicom3tools import dciodvfy

log = logging.getLogger(__name__)

# dciodvfy warnings the node's own objects are allowed (justified in docs/sr_writer.md).
ALLOWED_WARNINGS = (
    "(0x0018,0x1002) UI Device UID",
    "this is a Standard Extended SOP Class",
)

# Values a result must carry exactly as the source has them.
CARRIED = ("StudyInstanceUID", "PatientID", "SOPInstanceUID", "SeriesInstanceUID")


@dataclass(frozen=True)
class CorpusFile:
    name: str  # "pydicom/MR_small.dcm", "pydicom-data/RG1_UNCI.dcm"
    path: Path


def corpus_files() -> list[CorpusFile]:
    """Every readable DICOM image (with pixel data and a SOP Instance UID) of the corpus."""
    from pydicom.data import get_testdata_files

    out = []
    for raw in sorted(get_testdata_files()):
        path = Path(raw)
        if not path.is_file():
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = dcmread(path, stop_before_pixels=True, defer_size=256)
        except Exception:  # noqa: BLE001 - not a DICOM file (json, dumps, no preamble)
            continue
        if "SOPInstanceUID" not in ds or not ({"Rows", "Columns"} <= set(ds.dir())):
            continue
        if "data_store" in path.parts:
            name = f"pydicom-data/{path.name}"
        else:
            name = "pydicom/" + str(path).split("test_files/", 1)[-1]
        out.append(CorpusFile(name, path))
    return out


def open_model(workdir: Path, *, photometric: list[str] | None = None):  # noqa: ANN201
    """The bundled demo model with its filters emptied (``photometric`` None: any the
    runtime can read). Returns the ai ModelRegistry (close it) and the Model."""
    from ai import ModelRegistry, RuntimeOptions
    from ai.bundled import ensure_demo_package

    package = ensure_demo_package(workdir / "cache")
    copy = workdir / "demo-any"
    copy.mkdir(parents=True, exist_ok=True)
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    manifest["applies_to"] = {"photometric_interpretations": photometric or []}
    (copy / "model.yaml").write_text(yaml.safe_dump(manifest))
    if not (copy / "model.onnx").exists():
        (copy / "model.onnx").symlink_to(package / "model.onnx")
    registry = ModelRegistry.load(package_dirs=[copy], include_bundled=False,
                                  options=RuntimeOptions(max_wait_ms=1))
    if not registry.models:
        raise RuntimeError(f"demo copy not loaded: {registry.errors}")
    return registry, next(iter(registry.models.values()))


@dataclass
class Outcome:
    """What happened to one corpus file."""

    file: CorpusFile
    status: str  # ok, skipped (model does not take it), failed (clear refusal), crash
    reason: str = ""
    objects: dict[str, int] = field(default_factory=dict)  # kind -> count
    node_errors: list[str] = field(default_factory=list)  # errors attributable to the node
    inherited: list[str] = field(default_factory=list)  # result errors the source has too
    source_errors: int = 0  # the source's own dciodvfy errors
    unexpected_warnings: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


_VALUE = re.compile(r"<([^>]*)>(.*)$")


def _signature(line: str) -> tuple[str, str] | None:
    """(value, problem) of a dciodvfy 'Value invalid' error line, else None."""
    m = _VALUE.search(line)
    return (m.group(1), m.group(2).strip()) if m else None


def _source_carried_errors(source_path: Path, ds: Dataset) -> tuple[set[tuple[str, str]], int]:
    """The source's own errors on the values results must carry, and its error count."""
    errors, _ = dciodvfy(source_path)
    carried = {str(ds.get(k, "")) for k in CARRIED if ds.get(k, "")}
    sigs = {sig for sig in map(_signature, errors) if sig and sig[0] in carried}
    return sigs, len(errors)


def classify(result_errors: list[str], source_sigs: set[tuple[str, str]]
             ) -> tuple[list[str], list[str]]:
    """Split result errors into (node's, inherited from the source's carried values)."""
    node, inherited = [], []
    for line in result_errors:
        sig = _signature(line)
        (inherited if sig is not None and sig in source_sigs else node).append(line)
    return node, inherited


def run_file(cf: CorpusFile, model, out_dir: Path, options=None,  # noqa: ANN001
             check: bool = True) -> Outcome:
    """Infer ``cf`` with ``model``, write the results into ``out_dir``, dciodvfy them."""
    import sr_writer
    from ai.decode import DecodeError
    from ai.preprocess import PreprocessError
    from dicom_node.jobs.convert import image_results

    options = options or sr_writer.WriteOptions(heatmaps="positive")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(cf.path)
        ok, reason = model.applies_to(ds)
        if not ok:
            return Outcome(cf, "skipped", reason)
        try:
            results = model.infer(ds)
        except (DecodeError, PreprocessError) as exc:
            return Outcome(cf, "failed", f"{type(exc).__name__}: {exc}")
        try:
            objects = sr_writer.write_results([ds], image_results(results), options)
        except sr_writer.ResultWriteError as exc:
            return Outcome(cf, "failed", f"ResultWriteError: {exc}")
    outcome = Outcome(cf, "ok")
    folder = out_dir / re.sub(r"[^A-Za-z0-9._-]", "_", cf.name)
    folder.mkdir(parents=True, exist_ok=True)
    kinds = [("sr", objects.sr), *(("heatmap", h) for h in objects.heatmaps),
             *([("card", objects.card)] if objects.card is not None else [])]
    for i, (kind, obj) in enumerate(kinds):
        path = folder / f"{i:02d}-{kind}.dcm"
        obj.save_as(path, enforce_file_format=True)
        outcome.paths.append(path)
        outcome.objects[kind] = outcome.objects.get(kind, 0) + 1
    if not check:
        return outcome
    source_sigs: set[tuple[str, str]] | None = None
    for path in outcome.paths:
        errors, warns = dciodvfy(path)
        outcome.unexpected_warnings += [
            f"{path.name}: {w}" for w in warns if not any(a in w for a in ALLOWED_WARNINGS)
        ]
        if errors and source_sigs is None:
            source_sigs, outcome.source_errors = _source_carried_errors(cf.path, ds)
        node, inherited = classify(errors, source_sigs or set())
        outcome.node_errors += [f"{path.name}: {e}" for e in node]
        outcome.inherited += [f"{path.name}: {e}" for e in inherited]
    return outcome


def run_corpus(files: list[CorpusFile], out_dir: Path | None = None,
               check: bool = True) -> Iterator[Outcome]:
    """Run every file of ``files`` through one model instance; an exception escaping
    the model or the writers is reported as status "crash"."""
    work = Path(tempfile.mkdtemp(prefix="corpus-")) if out_dir is None else out_dir
    registry, model = open_model(work)
    try:
        for cf in files:
            try:
                yield run_file(cf, model, work / "results", check=check)
            except Exception as exc:  # noqa: BLE001 - a crash is an outcome to report
                log.debug("crash on %s", cf.name, exc_info=True)
                yield Outcome(cf, "crash", f"{type(exc).__name__}: {exc}")
    finally:
        registry.close()
        if out_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def table(outcomes: list[Outcome]) -> str:
    """A Markdown table: file, outcome, objects, node errors, inherited errors."""
    lines = ["| file | outcome | objects | node errors | inherited (source) errors |",
             "| --- | --- | --- | --- | --- |"]
    for o in outcomes:
        what = o.status if o.status == "ok" else f"{o.status}: {o.reason}"
        objs = ", ".join(f"{n} {k}" for k, n in o.objects.items()) or "-"
        inh = (f"{len(o.inherited)} (source has {o.source_errors})" if o.inherited else "0")
        lines.append(f"| {o.file.name} | {what.replace('|', '/')[:160]} | {objs} | "
                     f"{len(o.node_errors)} | {inh} |")
    return "\n".join(lines)
