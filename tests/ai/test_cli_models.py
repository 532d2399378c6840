"""`dicom-node models list/test` through the real CLI (typer runner, real files)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml
from PIL import Image
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.synthetic import make_cr, write_files

runner = CliRunner()


def _data_dir(tmp_path: Path, demo_cache: Path) -> Path:
    data = tmp_path / "data"
    shutil.copytree(demo_cache, data / "models", symlinks=True)  # pre-built demo cache
    return data


def test_models_list_shows_demo_and_broken_package(tmp_path, demo_cache):
    data = _data_dir(tmp_path, demo_cache)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "model.yaml").write_text("name: broken\n")
    cfg = tmp_path / "node.yaml"
    cfg.write_text(yaml.safe_dump({"models": {"packages": [str(broken)], "intra_op_threads": 1}}))
    result = runner.invoke(
        app,
        ["models", "list", "--config", str(cfg), "--data-dir", str(data)],
        env={"COLUMNS": "400"},  # the refusal names the package's path, which is long
    )
    assert result.exit_code == 1, result.output  # a refused package makes list exit non-zero
    assert "demo-cxr-densenet121" in result.output
    assert "CPUExecutionProvider" in result.output or "CUDA" in result.output
    assert "model.yaml" in result.output and "version" in result.output


def test_models_test_prints_probabilities_and_writes_pngs(tmp_path, demo_cache):
    data = _data_dir(tmp_path, demo_cache)
    (path,) = write_files([make_cr(rows=300, cols=200)], tmp_path / "in")
    out = tmp_path / "heat"
    result = runner.invoke(
        app,
        [
            "models",
            "test",
            "demo-cxr-densenet121",
            str(path),
            "--out",
            str(out),
            "--data-dir",
            str(data),
        ],
        env={"COLUMNS": "250"},
    )
    assert result.exit_code == 0, result.output
    assert "Pneumothorax" in result.output and "NON-CLINICAL DEMO" in result.output
    pngs = sorted(out.glob("*.png"))
    assert len(pngs) == 18
    assert Image.open(pngs[0]).size == (149, 224)  # field of view only, at model resolution


def test_models_test_with_a_package_dir_and_bad_file(tmp_path, demo_cache):
    pkg = next(p for p in demo_cache.iterdir() if p.name.startswith("demo-cxr"))
    bad = tmp_path / "bad.dcm"
    bad.write_bytes(b"nope")
    result = runner.invoke(
        app, ["models", "test", str(pkg), str(bad), "--data-dir", str(tmp_path / "d")]
    )
    assert result.exit_code == 2 and "bad.dcm" in result.output


def test_models_test_unknown_name(tmp_path, demo_cache):
    data = _data_dir(tmp_path, demo_cache)
    (path,) = write_files([make_cr(rows=64, cols=64)], tmp_path / "in")
    result = runner.invoke(app, ["models", "test", "nope", str(path), "--data-dir", str(data)])
    assert result.exit_code == 2 and "no model 'nope'" in result.output


def test_invalid_models_config_names_the_field(tmp_path):
    cfg = tmp_path / "node.yaml"
    cfg.write_text(yaml.safe_dump({"models": {"providers": ["quantum"]}}))
    result = runner.invoke(app, ["models", "list", "--config", str(cfg)])
    assert result.exit_code == 2 and "providers" in result.output


def test_models_test_with_a_broken_package_dir_names_the_field(tmp_path, demo_cache):
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    src = next(p for p in demo_cache.iterdir() if p.name.startswith("demo-cxr"))
    (pkg / "model.onnx").symlink_to(src / "model.onnx")
    (pkg / "model.yaml").write_text(
        (src / "model.yaml").read_text().replace("scores: logits", "scores: probabilities")
    )
    (path,) = write_files([make_cr(rows=64, cols=64)], tmp_path / "in")
    result = runner.invoke(app, ["models", "test", str(pkg), str(path)], env={"COLUMNS": "250"})
    assert result.exit_code == 2
    assert "package refused" in result.output and "output.scores" in result.output
