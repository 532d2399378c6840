"""Dynamic batcher: many concurrent callers each get exactly their own result."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from ai.batcher import BatcherClosed, DynamicBatcher


def _double(batch: np.ndarray):
    time.sleep(0.002)
    return [batch * 2.0, batch.sum(axis=tuple(range(1, batch.ndim)))]


def test_concurrent_callers_get_their_own_rows():
    b = DynamicBatcher(_double, max_batch_size=8, max_wait_ms=5)
    try:
        inputs = [np.full((3, 2), i, np.float32) for i in range(200)]
        with ThreadPoolExecutor(32) as pool:
            outs = list(pool.map(b.infer, inputs))
        for i, (doubled, total) in enumerate(outs):
            np.testing.assert_array_equal(doubled, inputs[i] * 2)
            assert float(total) == 6.0 * i
        assert max(b.batch_sizes) > 1, "requests were never batched"
        assert max(b.batch_sizes) <= 8
    finally:
        b.close()


def test_failing_batch_fails_its_callers_and_batcher_keeps_serving():
    def run(batch):
        if (batch < 0).any():
            raise ValueError("negative input")
        return [batch + 1]

    b = DynamicBatcher(run, max_batch_size=4, max_wait_ms=50)
    try:
        bad = b.submit(np.array([-1.0]))
        with pytest.raises(ValueError, match="negative input"):
            bad.result(5)
        ok = b.infer(np.array([1.0]), timeout=5)
        np.testing.assert_array_equal(ok[0], [2.0])
        stats = b.stats()
        assert stats["requests_failed"] == 1 and stats["requests_done"] == 1
    finally:
        b.close()


def test_wrong_row_count_is_an_error_not_a_mixup():
    b = DynamicBatcher(lambda batch: [batch[:1]], max_batch_size=4, max_wait_ms=50)
    try:
        futs = [b.submit(np.array([float(i)])) for i in range(3)]
        for f in futs:
            with pytest.raises(RuntimeError, match="rows"):
                f.result(5)
    finally:
        b.close()


def test_max_wait_bounds_latency_of_a_lone_request():
    b = DynamicBatcher(lambda batch: [batch], max_batch_size=64, max_wait_ms=30)
    try:
        t = time.monotonic()
        b.infer(np.zeros(1), timeout=5)
        assert time.monotonic() - t < 1.0
    finally:
        b.close()


def test_closed_batcher_refuses_and_finishes_queued_work():
    gate = threading.Event()

    def slow(batch):
        gate.wait(5)
        return [batch]

    b = DynamicBatcher(slow, max_batch_size=1, max_wait_ms=0)
    futs = [b.submit(np.array([float(i)])) for i in range(3)]
    gate.set()
    b.close()
    assert [float(f.result(5)[0][0]) for f in futs] == [0.0, 1.0, 2.0]
    with pytest.raises(BatcherClosed):
        b.submit(np.zeros(1))


def test_model_batcher_matches_single_image_runs(demo_registry):
    """Distinct images through the real demo model concurrently == one-by-one session runs."""
    model = demo_registry.get("demo-cxr-densenet121")
    rng = np.random.default_rng(7)
    tensors = [rng.uniform(-1024, 1024, (1, 224, 224)).astype(np.float32) for _ in range(12)]
    singles = [model._run_batch(t[np.newaxis]) for t in tensors]
    with ThreadPoolExecutor(12) as pool:
        outs = list(pool.map(model.infer_array, tensors))
    for single, out in zip(singles, outs, strict=True):
        np.testing.assert_allclose(out[0], single[0][0], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(out[1], single[1][0], atol=1e-4)
    assert max(model.batcher.batch_sizes) > 1


def test_on_batch_hook_sees_every_batch_before_its_callers_return():
    seen: list[int] = []
    b = DynamicBatcher(_double, max_batch_size=4, max_wait_ms=20)
    b.on_batch = seen.append
    try:
        futs = [b.submit(np.full((2,), i, np.float32)) for i in range(10)]
        for f in futs:
            f.result(5)
        assert sum(seen) == 10 and max(seen) <= 4
        assert seen == list(b.batch_sizes)
    finally:
        b.close()


def test_a_failing_on_batch_hook_does_not_fail_the_callers():
    b = DynamicBatcher(_double, max_batch_size=4, max_wait_ms=5)

    def broken(_size: int) -> None:
        raise RuntimeError("metrics down")

    b.on_batch = broken
    try:
        doubled, _ = b.infer(np.array([1.0, 2.0]), timeout=5)
        np.testing.assert_array_equal(doubled, [2.0, 4.0])
    finally:
        b.close()
