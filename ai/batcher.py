"""A dynamic batcher: gather requests until max batch size or max wait, run them as one."""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future

import numpy as np

log = logging.getLogger(__name__)

RunBatch = Callable[[np.ndarray], Sequence[np.ndarray]]
OnBatch = Callable[[int], None]


class BatcherClosed(RuntimeError):
    """The batcher was closed before the request ran."""


class DynamicBatcher:
    """Runs ``run_batch`` on stacked inputs from many threads; each caller gets its own row.

    ``run_batch(x)`` gets an array of shape (B, ...) and returns a sequence of arrays whose
    first axis is B. A batch that raises fails exactly its callers; the worker keeps going.

    ``on_batch(size)``, if set, is called after each successful batch, before its callers
    get their rows (the application's metrics hook; an error in it is logged, not raised).
    """

    def __init__(
        self, run_batch: RunBatch, max_batch_size: int, max_wait_ms: float, name: str = "model"
    ) -> None:
        if max_batch_size < 1:
            raise ValueError("max_batch_size must be >= 1")
        self._run = run_batch
        self.max_batch_size = max_batch_size
        self.max_wait = max(max_wait_ms, 0.0) / 1000.0
        self.name = name
        self._queue: queue.Queue[tuple[np.ndarray, Future] | None] = queue.Queue()
        self._closed = False
        self._lock = threading.Lock()
        self.batches_run = 0  # successful batches
        self.requests_done = 0  # requests answered with a result
        self.requests_failed = 0  # requests answered with an error
        self.batch_sizes: deque[int] = deque(maxlen=1000)  # recent successful batch sizes
        self.on_batch: OnBatch | None = None
        self._thread = threading.Thread(target=self._loop, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, x: np.ndarray) -> Future:
        """Queue one input (no batch axis); the Future resolves to a tuple of output rows."""
        fut: Future = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed(f"batcher {self.name} is closed")
            self._queue.put((x, fut))
        return fut

    def infer(self, x: np.ndarray, timeout: float | None = None) -> tuple[np.ndarray, ...]:
        """Blocking ``submit(x).result()``."""
        return self.submit(x).result(timeout)

    def _gather(self, first: tuple[np.ndarray, Future]) -> tuple[list, bool]:
        items = [first]
        deadline = time.monotonic() + self.max_wait
        stop = False
        while len(items) < self.max_batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._queue.get(timeout=remaining)
                    if remaining > 0
                    else self._queue.get_nowait()
                )
            except queue.Empty:
                break
            if item is None:
                stop = True
                break
            items.append(item)
        return items, stop

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                break
            items, stop = self._gather(first)
            self._execute(items)
            if stop:
                break
        # Fail whatever is still queued after close.
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not None and not item[1].done():
                item[1].set_exception(BatcherClosed(f"batcher {self.name} closed"))

    def _execute(self, items: list[tuple[np.ndarray, Future]]) -> None:
        live = [(x, f) for x, f in items if f.set_running_or_notify_cancel()]
        if not live:
            return
        try:
            batch = np.stack([x for x, _ in live])
            outputs = self._run(batch)
            for out in outputs:
                if out.shape[0] != len(live):
                    raise RuntimeError(
                        f"model returned {out.shape[0]} rows for a batch of {len(live)}"
                    )
        except BaseException as exc:  # noqa: BLE001 - every error goes to the callers
            log.warning("batch of %d on %s failed: %s", len(live), self.name, exc)
            self.requests_failed += len(live)
            for _, fut in live:
                fut.set_exception(exc)
            return
        self.batches_run += 1
        self.requests_done += len(live)
        self.batch_sizes.append(len(live))
        if self.on_batch is not None:
            try:
                self.on_batch(len(live))
            except Exception:  # a metrics hook never fails a batch
                log.exception("on_batch hook of %s failed", self.name)
        for i, (_, fut) in enumerate(live):
            fut.set_result(tuple(out[i] for out in outputs))  # views: no per-row copy

    def stats(self) -> dict[str, float]:
        """Counters for metrics: batches, requests done/failed, queue depth, recent mean batch."""
        recent = list(self.batch_sizes)
        return {
            "batches_run": self.batches_run,
            "requests_done": self.requests_done,
            "requests_failed": self.requests_failed,
            "queue_depth": self._queue.qsize(),
            "mean_batch_size": (sum(recent) / len(recent)) if recent else 0.0,
        }

    def close(self, timeout: float = 10.0) -> None:
        """Stop accepting work, finish what is queued, stop the worker."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
