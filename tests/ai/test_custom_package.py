"""A second, tiny hand-built package: NHWC, softmax, no heatmap, fixed window; run-time
failures; fixed batch size validation; concurrent infer() on distinct datasets."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import onnx
import pytest
import yaml
from onnx import TensorProto, helper, numpy_helper

from ai import ModelRegistry, RuntimeOptions
from dicom_node.synthetic import make_dx
from tests.support.tiny_model import tiny_manifest, tiny_package

OPTS = RuntimeOptions(intra_op_threads=1, max_wait_ms=10)


def test_tiny_nhwc_softmax_no_heatmap(tmp_path):
    reg = ModelRegistry.load([tiny_package(tmp_path)], include_bundled=False, options=OPTS)
    try:
        assert not reg.errors, reg.errors
        model = reg.get("tiny")
        ds = make_dx(rows=8, cols=8)  # model size: no resampling, so the mean is exact
        (res,) = model.infer(ds)
        # hand-computed: tensor mean m of the fixed-windowed, stretched image; softmax([m,-m])
        x = np.clip((ds.pixel_array.astype(np.float64) - 2047.5) / 4095 + 0.5, 0, 1)
        m = x.mean()
        p = np.exp(m) / (np.exp(m) + np.exp(-m))
        assert res.labels[0].probability == pytest.approx(p, abs=1e-6)
        assert res.labels[0].probability + res.labels[1].probability == pytest.approx(1.0)
        assert res.labels[0].heatmap is None and res.labels[0].code is None
        assert res.labels[1].code.scheme == "99TEST"
    finally:
        reg.close()


def test_concurrent_infer_on_distinct_datasets(tmp_path):
    reg = ModelRegistry.load([tiny_package(tmp_path)], include_bundled=False, options=OPTS)
    try:
        model = reg.get("tiny")
        dss = [make_dx(seed=s, rows=32, cols=32, bits=8 + s % 8) for s in range(40)]
        expected = [(ds.SOPInstanceUID, model.infer(ds)[0].labels[0].probability) for ds in dss]
        with ThreadPoolExecutor(16) as pool:
            got = list(pool.map(lambda ds: model.infer(ds)[0], dss))
        assert [r.sop_instance_uid for r in got] == [uid for uid, _ in expected]
        np.testing.assert_allclose(
            [r.labels[0].probability for r in got], [p for _, p in expected], rtol=1e-6
        )
        assert len({p for _, p in expected}) > 5  # inputs really differ
    finally:
        reg.close()


def test_fixed_batch_smaller_than_max_batch_is_refused(tmp_path):
    pkg = tiny_package(tmp_path, batch=1)
    reg = ModelRegistry.load([pkg], include_bundled=False, options=OPTS)
    try:
        assert not reg.models
        assert "runtime.max_batch_size" in reg.errors[0].message
    finally:
        reg.close()


def test_runtime_failure_fails_the_call_not_the_model(tmp_path):
    # Graph declares 8x8 but the manifest asks the runtime to feed 8x8 while the ONNX
    # graph really needs 16 channels at run time: build a graph that fails on execution.
    d = tmp_path / "failing"
    d.mkdir()
    shape = numpy_helper.from_array(np.array([-1, 7], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["scores"])],
        "failing",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, d / "model.onnx")
    (d / "model.yaml").write_text(yaml.safe_dump(tiny_manifest(name="failing")))
    ok = tiny_package(tmp_path, "ok")
    reg = ModelRegistry.load(
        [d, ok], include_bundled=False, options=RuntimeOptions(intra_op_threads=1, warmup=False)
    )
    try:
        with pytest.raises(Exception, match="(?i)reshape|shape"):
            reg.get("failing").infer(make_dx(rows=16, cols=16))
        # the same model's batcher still serves, and other models are unaffected
        with pytest.raises(Exception, match="(?i)reshape|shape"):
            reg.get("failing").infer(make_dx(rows=16, cols=16))
        assert reg.get("ok").infer(make_dx(rows=16, cols=16))[0].labels
    finally:
        reg.close()


def test_failing_warmup_is_a_package_error(tmp_path):
    d = tmp_path / "warmfail"
    d.mkdir()
    shape = numpy_helper.from_array(np.array([-1, 7], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("Reshape", ["x", "shape"], ["scores"])],
        "f",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 8, 8, 1])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, ["N", 2])],
        [shape],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, d / "model.onnx")
    (d / "model.yaml").write_text(yaml.safe_dump(tiny_manifest(name="warmfail")))
    reg = ModelRegistry.load([d], include_bundled=False, options=OPTS)
    try:
        assert not reg.models and len(reg.errors) == 1
        assert "warmfail" in str(reg.errors[0].path)
    finally:
        reg.close()
