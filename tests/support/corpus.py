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
import multiprocessing
import os
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
    "(0x0018,0x1002) UI Device UID",  # IHE AIR's Device UID in Contributing Equipment
    "this is a Standard Extended SOP Class",  # ... which makes it Standard Extended
    "Unrecognized defined term <99DCMNODE>",  # private scheme, declared; dciodvfy ignores
    "only permitted to be empty when actually unknown",  # Laterality 2C, truly unknown
    "Retired Person Name form",  # the source's name as it is (a name is not rewritten)
    "needed to build DICOMDIR",  # type 2 Patient ID / Study ID / date empty in the source
    "of attribute <Body Part Examined>",  # the source's own term (e.g. "WHOLE BODY")
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


def open_model(workdir: Path, *, photometric: list[str] | None = None, cache: Path | None = None):
    """The bundled demo model with its filters emptied (``photometric`` None: any the
    runtime can read), built into ``cache`` (default ``workdir/cache``). Returns the ai
    ModelRegistry (close it) and the Model."""
    from ai import ModelRegistry, RuntimeOptions
    from ai.bundled import ensure_demo_package

    package = ensure_demo_package(cache or workdir / "cache")
    copy = workdir / "demo-any"
    copy.mkdir(parents=True, exist_ok=True)
    manifest = yaml.safe_load((package / "model.yaml").read_text())
    manifest["applies_to"] = {"photometric_interpretations": photometric or []}
    (copy / "model.yaml").write_text(yaml.safe_dump(manifest))
    if not (copy / "model.onnx").exists():
        (copy / "model.onnx").symlink_to(package / "model.onnx")
    registry = ModelRegistry.load(
        package_dirs=[copy], include_bundled=False, options=RuntimeOptions(max_wait_ms=1)
    )
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
    inherited_distinct: int = 0  # distinct (value, problem) among ``inherited``
    source_carried_distinct: int = 0  # the source's own, on the carried values
    unexpected_warnings: list[str] = field(default_factory=list)
    paths: list[Path] = field(default_factory=list)


_ANGLED = re.compile(r"<([^>]*)>(.*)$")  # Value invalid ... = <value> - problem
_QUOTED = re.compile(r'^Error - (.*?) - "([^"]*)" in ')  # Illegal root for UID - "value" in


def _signature(line: str) -> tuple[str, str] | None:
    """(value, problem) of a dciodvfy error about one value, else None."""
    m = _QUOTED.search(line)
    if m:
        return m.group(2), m.group(1)
    m = _ANGLED.search(line)
    return (m.group(1), m.group(2).strip()) if m else None


def _source_carried_errors(
    source_path: Path, ds: Dataset
) -> tuple[set[tuple[str, str]], set[str], int]:
    """The source's own errors on the values results must carry (as signatures), all
    its error lines, and their count."""
    errors, _ = dciodvfy(source_path)
    carried = {str(ds.get(k, "")) for k in CARRIED if ds.get(k, "")}
    sigs = {sig for sig in map(_signature, errors) if sig and sig[0] in carried}
    return sigs, set(errors), len(errors)


def classify(
    result_errors: list[str], source_sigs: set[tuple[str, str]], source_lines: set[str]
) -> tuple[list[str], list[str]]:
    """Split one object's errors into (the node's, inherited from the source's carried
    values). A summary line without a value ("contains invalid data values") counts as
    inherited when the source has it too and every other error is inherited."""
    node, inherited, summaries = [], [], []
    for line in result_errors:
        sig = _signature(line)
        if sig is None and line in source_lines:
            summaries.append(line)
        else:
            (inherited if sig is not None and sig in source_sigs else node).append(line)
    (node if node else inherited).extend(summaries)
    return node, inherited


def run_file(cf: CorpusFile, model, out_dir: Path, options=None, check: bool = True) -> Outcome:
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
    for i, (kind, obj) in enumerate(objects.kinds()):  # SR, heatmaps, card, KOS, maps
        path = folder / f"{i:02d}-{kind}.dcm"
        obj.save_as(path, enforce_file_format=True)
        outcome.paths.append(path)
        outcome.objects[kind] = outcome.objects.get(kind, 0) + 1
    if not check:
        return outcome
    source: tuple[set[tuple[str, str]], set[str], int] | None = None
    for path in outcome.paths:
        errors, warns = dciodvfy(path)
        outcome.unexpected_warnings += [
            f"{path.name}: {w}" for w in warns if not any(a in w for a in ALLOWED_WARNINGS)
        ]
        if errors and source is None:
            source = _source_carried_errors(cf.path, ds)
            outcome.source_errors = source[2]
        node, inherited = classify(errors, *(source or (set(), set(), 0))[:2])
        outcome.node_errors += [f"{path.name}: {e}" for e in node]
        outcome.inherited += [f"{path.name}: {e}" for e in inherited]
    if source is not None:
        signatures = {_signature(line.split(": ", 1)[1]) for line in outcome.inherited}
        outcome.inherited_distinct = len(signatures - {None})
        outcome.source_carried_distinct = len(source[0])
    return outcome


_WORKER: dict[str, object] = {}


def _worker_init(work: str, check: bool, options: object) -> None:
    registry, model = open_model(Path(work) / f"model-{os.getpid()}", cache=Path(work) / "cache")
    _WORKER.update(registry=registry, model=model, work=Path(work), check=check, options=options)


def _worker_run(cf: CorpusFile) -> Outcome:
    try:
        outcome = run_file(
            cf,
            _WORKER["model"],
            _WORKER["work"] / "results",  # type: ignore[arg-type]
            _WORKER["options"],
            check=bool(_WORKER["check"]),
        )
    except Exception as exc:  # a crash is an outcome to report
        log.debug("crash on %s", cf.name, exc_info=True)
        outcome = Outcome(cf, "crash", f"{type(exc).__name__}: {exc}")
    outcome.paths = []  # the files stay in work/results; paths need not cross processes
    return outcome


def run_corpus(
    files: list[CorpusFile],
    out_dir: Path | None = None,
    check: bool = True,
    workers: int | None = None,
    options: object = None,
) -> Iterator[Outcome]:
    """Run every file of ``files`` (in order) through the demo copy and the writers
    (``options``: sr_writer.WriteOptions, default one heatmap per positive label),
    ``workers`` processes at a time (default: one per CPU, at most 4); an exception
    escaping the model or the writers is reported as status "crash"."""
    work = Path(tempfile.mkdtemp(prefix="corpus-")) if out_dir is None else out_dir
    work.mkdir(parents=True, exist_ok=True)
    ensure_demo_package_once(work)
    workers = workers or min(4, os.cpu_count() or 1)
    # Spawned, not forked: the parent has threads (OpenBLAS's from numpy's import, and a
    # test run's own), and a forked child can inherit a lock one of them held.
    ctx = multiprocessing.get_context("spawn")
    try:
        with ctx.Pool(workers, _worker_init, (str(work), check, options)) as pool:
            yield from pool.imap(_worker_run, files)
    finally:
        if out_dir is None:
            shutil.rmtree(work, ignore_errors=True)


def ensure_demo_package_once(work: Path) -> None:
    """Build the demo package before the workers start (each worker then only loads it)."""
    from ai.bundled import ensure_demo_package

    ensure_demo_package(work / "cache")


def table(outcomes: list[Outcome]) -> str:
    """A Markdown table: file, outcome, objects, node errors, inherited errors."""
    lines = [
        "| file | outcome | objects | node errors | inherited errors: lines, distinct "
        "(source's own distinct on carried values) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for o in outcomes:
        what = o.status if o.status == "ok" else f"{o.status}: {o.reason}"
        objs = ", ".join(f"{n} {k}" for k, n in o.objects.items()) or "-"
        inh = (
            f"{len(o.inherited)}, {o.inherited_distinct} ({o.source_carried_distinct})"
            if o.inherited
            else "0"
        )
        lines.append(
            f"| {o.file.name} | {what.replace('|', '/')[:160]} | {objs} | "
            f"{len(o.node_errors)} | {inh} |"
        )
    return "\n".join(lines)
