"""`dicom-node route explain` on a folder with a CT and a CR series."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_node import synthetic
from dicom_node.cli import app

CONFIG = """
routes:
  - name: ct-forward
    match: {modality: CT, min_instances: 4}
    action: forward
    destinations: [pacs]
  - name: mr-brain
    match: {modality: MR}
    models: [brain]
  - name: cxr
    match: {modality: [CR, DX], body_part: chest, series_description: "^chest"}
    models: [cxr-demo]
    destinations: [pacs]
    priority: stat
    select: {view_positions: [PA, AP]}
destinations:
  - {name: pacs, kind: dimse, ae_title: PACS, host: 127.0.0.1, port: 11112}
"""


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("study")
    uid = synthetic.new_uid()
    cr = synthetic.make_cr(rows=64, cols=64, study_uid=uid)
    synthetic.write_files([cr], folder / "cr")
    synthetic.write_files(
        list(synthetic.iter_ct_series(3, rows=32, cols=32, study_uid=uid)), folder / "ct" / "nested"
    )
    (folder / "notes.txt").write_text("not dicom")
    return folder


@pytest.fixture()
def config(tmp_path: Path) -> Path:
    path = tmp_path / "node.yaml"
    path.write_text(CONFIG)
    return path


def run(*args: str):
    return CliRunner().invoke(app, ["route", "explain", *args], env={"COLUMNS": "250"})


def test_table_names_the_matching_rule_and_why_earlier_rules_failed(
    study: Path, config: Path
) -> None:
    res = run(str(study), "--config", str(config))
    assert res.exit_code == 0, res.output
    lines = [ln for ln in res.output.splitlines() if "│" in ln]

    def row(text: str) -> list[str]:
        found = [ln for ln in lines if text in ln]
        assert found, f"no row with {text!r} in:\n{res.output}"
        return [c.strip() for c in found[0].split("│")[1:-1]]

    # CR series: rule 0 fails on modality (CR is not CT), rule 2 matches with its PA image
    cells = row("CR CHEST PA")
    assert cells[1:4] == ["0", "ct-forward", "failed"]
    assert cells[4] == "match.modality: expected CT, got CR"
    assert "MATCHED" in res.output
    matched = [
        c.strip()
        for c in next(ln for ln in lines if "cxr" in ln and "MATCHED" in ln).split("│")[1:-1]
    ]
    assert matched[1:4] == ["2", "cxr", "MATCHED"]
    assert matched[4].startswith(
        "infer, 1 instance(s) selected; models: cxr-demo; destinations: pacs; priority: stat"
    )
    # CT series: 3 slices, rule 0 needs 4 -> fails on the count; MR fails; cxr fails
    ct = row("CT CHEST 1.0 AX")
    assert ct[1:4] == ["0", "ct-forward", "failed"]
    assert ct[4] == "match.min_instances: expected >= 4, got 3 matching instance(s)"
    assert any("mr-brain" in ln and "match.modality: expected MR, got CT" in ln for ln in lines)
    assert any("cxr" in ln and "match.modality: expected CR, DX, got CT" in ln for ln in lines)
    assert res.output.count("no rule matched") == 1
    assert "notes.txt" in res.output and "5 file(s), 2 series, 1 unreadable" in res.output


def test_json_output_and_called_calling_ae(study: Path, config: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "ae.yaml"
    cfg.write_text("routes:\n  - {name: from-pacs, match: {calling_ae: PACS}, models: [m]}\n")
    res = run(str(study), "--config", str(cfg), "--json", "--calling-ae", "MODALITY")
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["files"] == 5 and len(data["series"]) == 2
    assert [u["path"].endswith("notes.txt") for u in data["unreadable"]] == [True]
    for s in data["series"]:
        assert s["matched"] == []
        assert s["trace"][0] == {
            "index": 0,
            "rule": "from-pacs",
            "status": "failed",
            "condition": "match.calling_ae",
            "expected": "PACS",
            "actual": "MODALITY",
        }
    res = run(str(study), "--config", str(cfg), "--json", "--calling-ae", "PACS")
    data = json.loads(res.output)
    by_mod = {s["modality"]: s for s in data["series"]}
    assert by_mod["CT"]["matched"] == ["from-pacs"]
    assert len(by_mod["CT"]["decisions"][0]["instance_uids"]) == 3


def test_single_file_and_errors(study: Path, config: Path, tmp_path: Path) -> None:
    one = next((study / "cr").glob("*.dcm"))
    res = run(str(one), "--config", str(config), "--json")
    assert res.exit_code == 0 and json.loads(res.output)["series"][0]["matched"] == ["cxr"]
    res = run(str(tmp_path / "missing"), "--config", str(config))
    assert res.exit_code == 2 and "no such file or folder" in res.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("routes:\n  - {name: x, models: [m], match: {min_rows: zero}}\n")
    res = run(str(one), "--config", str(bad))
    assert res.exit_code == 2 and "routes[0].match.min_rows" in res.output
    dangling = tmp_path / "dangling.yaml"
    dangling.write_text("routes:\n  - {name: x, action: forward, destinations: [nowhere]}\n")
    res = run(str(one), "--config", str(dangling))  # refused, as `serve` would refuse it
    assert res.exit_code == 2
    assert "routes[0].destinations[0]: unknown destination 'nowhere'" in res.output
