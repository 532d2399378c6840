"""Inference benchmark on the bundled DenseNet-121-shaped demo model.

Prints, from one run: (a) raw ONNX Runtime throughput at the best batch size,
(b) throughput through the dynamic batcher with N concurrent single-image callers,
their ratio (target >= 0.8), (c) p50/p95 per-image latency at light load (one caller at a
time, paced), (d) preprocessing time of a 2048x2048 16-bit CR next to the model time.

    python benchmarks/inference.py [--threads 2] [--callers 16] [--seconds 8]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout

from ai import ModelRegistry, RuntimeOptions
from ai.decode import decode_frames
from ai.preprocess import preprocess_frame
from dicom_node.synthetic import make_cr


def raw_throughput(model, batch: int, seconds: float) -> float:
    x = np.random.default_rng(0).uniform(-1024, 1024, (batch, 1, 224, 224)).astype(np.float32)
    model._run_batch(x)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        model._run_batch(x)
        n += batch
    return n / (time.perf_counter() - t0)


def batcher_throughput(model, callers: int, seconds: float) -> tuple[float, list[int]]:
    x = np.random.default_rng(1).uniform(-1024, 1024, (1, 224, 224)).astype(np.float32)
    model.batcher.batch_sizes.clear()
    stop = time.perf_counter() + seconds
    counts = [0] * callers

    def caller(i: int) -> None:
        while time.perf_counter() < stop:
            model.infer_array(x)
            counts[i] += 1

    threads = [threading.Thread(target=caller, args=(i,)) for i in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts) / (time.perf_counter() - t0), list(model.batcher.batch_sizes)


def light_load_latency(model, n: int) -> list[float]:
    x = np.random.default_rng(2).uniform(-1024, 1024, (1, 224, 224)).astype(np.float32)
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        model.infer_array(x)
        out.append((time.perf_counter() - t0) * 1000)
        time.sleep(0.02)
    return out


def preprocess_time(model, repeats: int) -> tuple[float, float]:
    ds = make_cr(rows=2048, cols=2048, bits=16)
    t0 = time.perf_counter()
    for _ in range(repeats):
        frame = decode_frames(ds)[0]
    decode_ms = (time.perf_counter() - t0) * 1000 / repeats
    t0 = time.perf_counter()
    for _ in range(repeats):
        preprocess_frame(frame, ds, model.manifest.preprocess, model.manifest.input)
    return decode_ms, (time.perf_counter() - t0) * 1000 / repeats


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2, help="ORT intra-op threads")
    ap.add_argument("--callers", type=int, default=16)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--batches", default="1,2,4,8,16")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--max-wait-ms", type=float, default=5.0)
    ap.add_argument("--cache", type=Path, default=None)
    args = ap.parse_args()
    cache = args.cache or Path(tempfile.mkdtemp(prefix="bench-models-"))
    sizes = [int(b) for b in args.batches.split(",")]
    results = {}
    print(f"building/loading bundled demo model in {cache} ...")
    for b in sizes:
        reg = ModelRegistry.load(
            cache_dir=cache,
            options=RuntimeOptions(
                intra_op_threads=args.threads, max_batch_size=b, max_wait_ms=args.max_wait_ms
            ),
        )
        model = reg.get("demo-cxr-densenet121")
        results[b] = raw_throughput(model, b, args.seconds / 2)
        print(f"  raw ORT batch {b:>3}: {results[b]:7.1f} img/s  [{model.provider}]")
        reg.close()
    best = max(results, key=results.get)
    reg = ModelRegistry.load(
        cache_dir=cache,
        options=RuntimeOptions(
            intra_op_threads=args.threads, max_batch_size=best, max_wait_ms=args.max_wait_ms
        ),
    )
    model = reg.get("demo-cxr-densenet121")
    # The machine is shared: interleave raw and batched rounds and compare medians.
    busy: list[float] = []
    original = model.batcher._run

    def timed(batch):
        t = time.perf_counter()
        out = original(batch)
        busy.append(time.perf_counter() - t)
        return out

    model.batcher._run = timed
    raws, dyns, sizes_seen, busy_frac = [], [], [], []
    for r in range(args.rounds):
        raws.append(raw_throughput(model, best, args.seconds))
        busy.clear()
        t0 = time.perf_counter()
        dyn, seen = batcher_throughput(model, args.callers, args.seconds)
        busy_frac.append(sum(busy) / (time.perf_counter() - t0))
        dyns.append(dyn)
        sizes_seen.extend(seen)
        print(
            f"  round {r + 1}: raw {raws[-1]:.1f} img/s, batcher {dyn:.1f} img/s, "
            f"ratio {dyn / raws[-1]:.2f}, ORT busy {busy_frac[-1]:.0%} of batcher wall time"
        )
    raw_best, dyn = statistics.median(raws), statistics.median(dyns)
    lat = light_load_latency(model, 60)
    decode_ms, prep_ms = preprocess_time(model, 5)
    model_ms = 1000.0 / raw_throughput(model, 1, 2.0)
    reg.close()
    print()
    print(
        f"(a) raw ONNX Runtime, best batch {best}: {raw_best:.1f} img/s (median of {args.rounds})"
    )
    print(
        f"(b) dynamic batcher, {args.callers} concurrent single-image callers: {dyn:.1f} img/s"
        f"  (mean batch {statistics.mean(sizes_seen):.1f}, max_wait {args.max_wait_ms} ms)"
    )
    print(
        f"    ratio (b)/(a): {dyn / raw_best:.2f}  (target >= 0.80); ORT busy "
        f"{statistics.median(busy_frac):.0%} of the batcher's wall time"
    )
    print(
        f"(c) light load (1 caller, paced): p50 {pct(lat, 50):.1f} ms, p95 {pct(lat, 95):.1f} ms"
        f" per image (includes up to {args.max_wait_ms} ms batch wait)"
    )
    print(
        f"(d) 2048x2048 16-bit CR: decode {decode_ms:.1f} ms + preprocess {prep_ms:.1f} ms "
        f"vs model {model_ms:.1f} ms/image at batch 1"
    )


if __name__ == "__main__":
    main()
