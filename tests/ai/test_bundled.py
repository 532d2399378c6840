"""The bundled demo model: deterministic build, typed results, heatmap geometry, frames."""

from __future__ import annotations

import copy
import hashlib

import numpy as np
import pytest

from ai.bundled import ensure_demo_package
from ai.bundled.demo_cxr import build_demo_bytes, build_demo_onnx
from ai.preprocess import crop_heatmap, preprocess_frame
from dicom_node.synthetic import iter_ct_series, make_cr, make_dx

NAME = "demo-cxr-densenet121"
# The demo's ONNX file as every release so far has built it; its Device UID derives
# from these bytes, so a builder change must not alter them.
DEMO_SHA256 = "4f1d065503c759486ed3e5c45b9301835ebc4ad3d8175bb111ef17a482f42e7a"


def test_build_is_deterministic(tmp_path, demo_cache):
    a = build_demo_onnx().SerializeToString()
    assert a == build_demo_onnx().SerializeToString()
    assert build_demo_onnx(seed=1).SerializeToString() != a
    other = ensure_demo_package(tmp_path)
    cached = next(p for p in demo_cache.iterdir() if p.name.startswith("demo-cxr"))
    assert (other / "model.onnx").read_bytes() == (cached / "model.onnx").read_bytes() == a
    assert (other / "model.yaml").read_text() == (cached / "model.yaml").read_text()
    # a second call reuses the cache rather than rebuilding
    mtime = (other / "model.onnx").stat().st_mtime_ns
    ensure_demo_package(tmp_path)
    assert (other / "model.onnx").stat().st_mtime_ns == mtime


def test_lean_build_writes_the_same_bytes():
    data = build_demo_bytes()
    assert hashlib.sha256(data).hexdigest() == DEMO_SHA256
    assert data == build_demo_onnx().SerializeToString()


def test_infer_cr_typed_results_and_heatmap_field_of_view(demo_registry):
    model = demo_registry.get(NAME)
    ds = make_cr(rows=600, cols=400)
    (res,) = model.infer(ds)
    assert res.sop_instance_uid == ds.SOPInstanceUID and res.frame is None
    assert res.model.demo and res.model.name == NAME
    assert len(res.labels) == 18
    lab = {x.name: x for x in res.labels}
    assert lab["Pneumothorax"].code.value == "36118008"
    assert lab["Hernia"].code.scheme.startswith("99")
    for x in res.labels:
        assert 0.0 <= x.probability <= 1.0
        assert x.positive == (x.probability >= x.threshold)
        # 600x400 letterboxed into 224x224: the field of view is 224 x round(400*224/600)
        assert x.heatmap.shape == (224, 149) and x.heatmap.dtype == np.float32
        assert x.heatmap.min() >= 0.0 and x.heatmap.max() <= 1.0
    # The heatmap is the model's CAM with the padding columns cut away.
    prep = preprocess_frame(ds.pixel_array, ds, model.manifest.preprocess, model.manifest.input)
    logits, cam = model._run_batch(prep.tensor[np.newaxis])
    np.testing.assert_allclose(
        res.labels[0].heatmap, crop_heatmap(cam[0, 0], prep.box, 224, 224), atol=1e-5
    )
    np.testing.assert_allclose(
        res.labels[0].probability, 1 / (1 + np.exp(-logits[0, 0])), rtol=1e-5
    )


def test_monochrome1_and_monochrome2_of_the_same_picture_agree(demo_registry):
    model = demo_registry.get(NAME)
    m2 = model.infer(make_dx(photometric="MONOCHROME2", rows=256, cols=256))[0]
    m1 = model.infer(make_dx(photometric="MONOCHROME1", rows=256, cols=256))[0]
    p2 = [x.probability for x in m2.labels]
    p1 = [x.probability for x in m1.labels]
    np.testing.assert_allclose(p1, p2, atol=1e-4)


def test_multiframe_gives_one_result_per_frame(demo_registry):
    model = demo_registry.get(NAME)
    a = make_dx(seed=5, rows=128, cols=128)
    b = make_dx(seed=6, rows=128, cols=128)
    multi = copy.deepcopy(a)
    multi.NumberOfFrames = 2
    multi.PixelData = a.PixelData + b.PixelData
    results = model.infer(multi)
    assert [r.frame for r in results] == [1, 2]
    for r, single in zip(results, (a, b), strict=True):
        want = [x.probability for x in model.infer(single)[0].labels]
        np.testing.assert_allclose([x.probability for x in r.labels], want, atol=1e-5)
    assert not np.allclose(
        [x.probability for x in results[0].labels], [x.probability for x in results[1].labels]
    )


def test_applies_to_filters(demo_registry):
    model = demo_registry.get(NAME)
    assert model.applies_to(make_cr()) == (True, "")
    ok, why = model.applies_to(next(iter_ct_series(1, rows=64, cols=64)))
    assert not ok and "Modality 'CT'" in why
    ok, why = model.applies_to(make_dx(view="LL"))
    assert not ok and "ViewPosition" in why
    ds = make_cr()
    del ds.BodyPartExamined
    ok, why = model.applies_to(ds)
    assert not ok and "BodyPartExamined is missing" in why


def test_provider_is_reported(demo_registry):
    assert demo_registry.get(NAME).provider.endswith("ExecutionProvider")


@pytest.mark.parametrize("bits", [8, 16])
def test_other_bit_depths(demo_registry, bits):
    (res,) = demo_registry.get(NAME).infer(make_cr(rows=200, cols=300, bits=bits))
    assert res.labels[0].heatmap.shape == (149, 224)


def test_damaged_cache_is_rebuilt(tmp_path):
    target = ensure_demo_package(tmp_path)
    good = (target / "model.onnx").read_bytes()
    (target / "model.yaml").write_text("name: [broken\n")
    (target / "model.onnx").write_bytes(b"truncated")
    again = ensure_demo_package(tmp_path)
    assert again == target and (target / "model.onnx").read_bytes() == good
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".demo-build-")]
