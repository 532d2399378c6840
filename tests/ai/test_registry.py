"""Manifest validation, package-vs-ONNX validation, and the registry's per-package errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from ai import ModelRegistry, RuntimeOptions
from ai.manifest import ManifestError, load_manifest

OPTS = RuntimeOptions(intra_op_threads=1, warmup=False)


def _demo_dir(cache: Path) -> Path:
    return next(p for p in cache.iterdir() if p.name.startswith("demo-cxr"))


def _variant(tmp_path: Path, cache: Path, name: str, edit) -> Path:
    src = _demo_dir(cache)
    dst = tmp_path / name
    dst.mkdir()
    os.symlink(src / "model.onnx", dst / "model.onnx")
    data = yaml.safe_load((src / "model.yaml").read_text())
    data["name"] = name
    edit(data)
    (dst / "model.yaml").write_text(yaml.safe_dump(data))
    return dst


def test_demo_manifest_round_trips(demo_cache):
    m = load_manifest(_demo_dir(demo_cache) / "model.yaml")
    assert m.demo and "NON-CLINICAL" in m.intended_use
    assert len(m.output.labels) == 18 and m.output.heatmap == "cam"


@pytest.mark.parametrize(
    "edit,field",
    [
        (lambda d: d["input"].update(name="pixels"), "input.name"),
        (lambda d: d["output"]["labels"].pop(), "output.labels"),
        (lambda d: d["output"].update(heatmap="gradcam"), "output.heatmap"),
        (lambda d: d["output"].update(scores="probs"), "output.scores"),
        (lambda d: d["input"].update(height=256), "input.height"),
        (lambda d: d["output"]["labels"][3].update(threshold=1.5), "output.labels[3].threshold"),
        (lambda d: d.pop("device_uid"), "device_uid"),
        (lambda d: d["preprocess"]["window"].update(source="fixed"), "preprocess.window"),
        (lambda d: d.update(onnx_file="missing.onnx"), "onnx_file"),
    ],
)
def test_broken_package_is_refused_naming_file_and_field(tmp_path, demo_cache, edit, field):
    bad = _variant(tmp_path, demo_cache, "broken", edit)
    registry = ModelRegistry.load([bad], cache_dir=demo_cache, options=OPTS)
    try:
        assert "demo-cxr-densenet121" in registry.models, "a broken package stopped the others"
        assert "broken" not in registry.models
        (err,) = registry.errors
        assert "model.yaml" in err.message and field in err.message, err.message
    finally:
        registry.close()


def test_garbage_onnx_and_bad_yaml_are_reported(tmp_path, demo_cache):
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "model.onnx").write_bytes(b"not an onnx file")
    (garbage / "model.yaml").write_text(
        (_demo_dir(demo_cache) / "model.yaml")
        .read_text()
        .replace("demo-cxr-densenet121", "garbage")
    )
    badyaml = tmp_path / "badyaml"
    badyaml.mkdir()
    (badyaml / "model.yaml").write_text("name: [unclosed\n")
    good = _variant(tmp_path, demo_cache, "second-good", lambda d: None)
    registry = ModelRegistry.load(
        [garbage, badyaml, good, tmp_path / "nope"], cache_dir=demo_cache, options=OPTS
    )
    try:
        assert set(registry.models) == {"demo-cxr-densenet121", "second-good"}
        msgs = {e.path.name: e.message for e in registry.errors}
        assert "model.onnx" in msgs["garbage"]
        assert "model.yaml" in msgs["badyaml"] and "invalid YAML" in msgs["badyaml"]
        assert "not found" in msgs["nope"]
    finally:
        registry.close()


def test_duplicate_name_is_refused(tmp_path, demo_cache):
    dup = _variant(tmp_path, demo_cache, "x", lambda d: d.update(name="demo-cxr-densenet121"))
    registry = ModelRegistry.load([dup], cache_dir=demo_cache, options=OPTS)
    try:
        assert len(registry.errors) == 1 and "already loaded" in registry.errors[0].message
    finally:
        registry.close()


def test_models_dir_discovery_and_get(tmp_path, demo_cache):
    _variant(tmp_path, demo_cache, "found-in-dir", lambda d: None)
    registry = ModelRegistry.load(models_dir=tmp_path, include_bundled=False, options=OPTS)
    try:
        assert list(registry.models) == ["found-in-dir"]
        with pytest.raises(KeyError, match="found-in-dir"):
            registry.get("other")
    finally:
        registry.close()


def test_manifest_error_str():
    err = ManifestError("/p/model.yaml", "input.name", "bad")
    assert str(err) == "/p/model.yaml: input.name: bad"
