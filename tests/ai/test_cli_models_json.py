"""`dicom-node models test`: --json prints only JSON on stdout; PNGs only with --out."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from dicom_node.synthetic import iter_ct_series, make_cr, write_files

ROOT = Path(__file__).resolve().parents[2]


def _cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "200"}
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "models", "test", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def _data_dir(tmp_path: Path, demo_cache: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(demo_cache, data / "models", symlinks=True)
    return data


def test_json_is_the_only_thing_on_stdout(tmp_path: Path, demo_cache: Path) -> None:
    data = _data_dir(tmp_path, demo_cache)
    ct = write_files([next(iter_ct_series(1, rows=64, cols=64))], tmp_path / "in")[0]
    work = tmp_path / "cwd"
    work.mkdir()
    proc = _cli(work, "demo-cxr-densenet121", str(ct), "--json", "--data-dir", str(data))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)  # the whole of stdout
    assert doc["model"]["name"] == "demo-cxr-densenet121" and len(doc["labels"]) == 18
    assert "would not route" in proc.stderr  # the note (a CT, not a chest CR) on stderr
    assert list(work.iterdir()) == []  # nothing written unasked


def test_pngs_only_with_out(tmp_path: Path, demo_cache: Path) -> None:
    data = _data_dir(tmp_path, demo_cache)
    cr = write_files([make_cr(rows=128, cols=96)], tmp_path / "in")[0]
    work = tmp_path / "cwd"
    work.mkdir()
    plain = _cli(work, "demo-cxr-densenet121", str(cr), "--data-dir", str(data))
    assert plain.returncode == 0, plain.stderr
    assert "Pneumothorax" in plain.stdout and "--out" in plain.stdout
    assert list(work.iterdir()) == []
    out = tmp_path / "pngs"
    asked = _cli(
        work, "demo-cxr-densenet121", str(cr), "--json", "--out", str(out), "--data-dir", str(data)
    )
    assert asked.returncode == 0, asked.stderr
    doc = json.loads(asked.stdout)
    written = sorted(out.glob("*.png"))
    assert len(written) == 18
    assert sorted(Path(lab["heatmap_png"]) for lab in doc["labels"]) == written
