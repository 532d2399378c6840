"""The embedded executor: worker threads inside ``serve`` that claim and run jobs."""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable

from dicom_node.jobs.queue import Claim, JobQueue
from dicom_node.memory import freeze_after_first_job, release_free_memory

log = logging.getLogger(__name__)


def node_worker_prefix() -> str:
    """Identifies this host's workers; a restarted node reclaims what its last run held."""
    return f"{socket.gethostname()}:"


class LocalExecutor:
    """``workers`` threads, each looping claim -> ``run_job`` -> claim.

    ``run_job`` does the whole job and records its outcome through the queue; an
    exception escaping it is a bug and is recorded as a transient failure.
    """

    def __init__(
        self,
        queue: JobQueue,
        run_job: Callable[[Claim], None],
        *,
        workers: int = 2,
        poll_seconds: float = 0.5,
        heartbeat_seconds: float = 10.0,
        on_crash: Callable[[Claim, Exception], None] | None = None,
    ) -> None:
        self.queue = queue
        self.run_job = run_job
        self.workers = workers
        self.poll = poll_seconds
        self.heartbeat_every = heartbeat_seconds
        self.on_crash = on_crash
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []
        self._held: dict[int, Claim] = {}
        self._lock = threading.Lock()
        self.prefix = f"{node_worker_prefix()}{os.getpid()}:"

    def start(self) -> None:
        """Requeue what a previous run of this node held, then start the workers."""
        recovered = self.queue.recover(worker_prefix=node_worker_prefix())
        if recovered:
            log.warning("requeued %d job(s) interrupted by the last shutdown", len(recovered))
        for n in range(self.workers):
            t = threading.Thread(
                target=self._loop, args=(f"{self.prefix}{n}",), name=f"job-worker-{n}", daemon=True
            )
            t.start()
            self._threads.append(t)
        hb = threading.Thread(target=self._heartbeats, name="job-heartbeat", daemon=True)
        hb.start()
        self._threads.append(hb)

    def wake(self) -> None:
        """New work was queued: stop waiting for the next poll."""
        self._wake.set()

    def stop(self, timeout: float = 30.0) -> None:
        """Finish the jobs in hand (up to ``timeout``), then stop."""
        self._stop.set()
        self._wake.set()
        for t in self._threads:
            t.join(timeout=timeout)
        self._threads.clear()

    def _loop(self, worker: str) -> None:
        while not self._stop.is_set():
            try:
                claim = self.queue.claim(worker)
            except Exception:  # database trouble: log, back off, keep serving
                log.exception("could not claim a job")
                self._stop.wait(self.poll * 4)
                continue
            if claim is None:
                self._wake.wait(self.poll)
                self._wake.clear()
                continue
            with self._lock:
                self._held[claim.job_id] = claim
            try:
                self.run_job(claim)
            except Exception as exc:  # a job must never kill a worker
                log.exception("job %s crashed its worker", claim.job_id)
                if self.on_crash is not None:
                    self.on_crash(claim, exc)
            finally:
                with self._lock:
                    self._held.pop(claim.job_id, None)
                freeze_after_first_job()  # what it loaded for good: out of the GC's way
                release_free_memory()  # the job's images and tensors, freed to the heap

    def _heartbeats(self) -> None:
        while not self._stop.wait(self.heartbeat_every):
            with self._lock:
                held = list(self._held.values())
            for claim in held:
                try:
                    self.queue.heartbeat(claim)
                except Exception:
                    log.exception("heartbeat for job %s failed", claim.job_id)
