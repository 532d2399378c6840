"""Process-level memory settings for ``serve``: glibc malloc tuning and trimming."""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import logging
import os
import threading
import time

log = logging.getLogger(__name__)

_M_MMAP_THRESHOLD = -3  # glibc mallopt parameters
_M_ARENA_MAX = -8
# While the models are built, loaded and warmed up: every block from 128 KiB up is its
# own mapping, returned to the OS when freed (glibc's starting value, held fixed).
STARTUP_MMAP_THRESHOLD = 128 * 1024
# Once serving: glibc's own ceiling for the threshold, so the jobs' image-sized
# temporaries reuse heap memory (no fresh page faults); the executor trims after each job.
SERVING_MMAP_THRESHOLD = 32 * 1024 * 1024


@functools.cache
def _libc() -> ctypes.CDLL | None:
    """glibc, or None where there is none (musl, macOS: every helper is then a no-op)."""
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        if libc is not None and hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim"):
            return libc
    except OSError:
        pass
    return None


def _tuned_by_environment(variable: str, tunable: str) -> bool:
    return variable in os.environ or tunable in os.environ.get("GLIBC_TUNABLES", "")


def _mallopt(option: int, value: int, env: str, tunable: str) -> bool:
    """glibc ``mallopt(option, value)`` unless the environment already sets it (``env``
    or ``GLIBC_TUNABLES`` ``tunable``); whether it took effect."""
    if _tuned_by_environment(env, tunable):
        return False
    libc = _libc()
    ok = bool(libc is not None and libc.mallopt(option, value))
    log.debug("mallopt %s=%d: %s", tunable, value, ok)
    return ok


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX does). Every association and worker
    thread otherwise gets an arena that keeps freed memory: measured here, 5 concurrent
    chest X-ray jobs peaked at 583 MB RSS with the default and 457 MB with 2 arenas.
    An explicit MALLOC_ARENA_MAX in the environment wins. No-op off glibc."""
    return _mallopt(_M_ARENA_MAX, arenas, "MALLOC_ARENA_MAX", "glibc.malloc.arena_max")


def set_mmap_threshold(threshold: int) -> bool:
    """Hold glibc's mmap threshold at ``threshold`` bytes. glibc otherwise raises it each
    time a mapped block is freed (up to 32 MiB), after which such blocks stay on the
    heap as freed-but-resident memory: ONNX Runtime's model load and warm-up (no arena)
    left ~60 MB that way: a default ``serve`` (demo cached) idled at 259 MB RSS, 200 MB
    with the threshold held during start-up. Held at 128 KiB while serving too, each job
    would fault in ~150 MB of fresh pages (+25% job time), hence SERVING_MMAP_THRESHOLD.
    MALLOC_MMAP_THRESHOLD_ / GLIBC_TUNABLES in the environment win. No-op off glibc."""
    return _mallopt(
        _M_MMAP_THRESHOLD, threshold, "MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold"
    )


def release_free_memory() -> bool:
    """Return the heap's free pages to the OS (glibc ``malloc_trim(0)``, a few ms); True
    if any memory was released. Without it each job's freed images and tensors stay
    resident: after 8 chest X-ray jobs a node held 416 MB; trimming after each, 284 MB."""
    libc = _libc()
    return bool(libc is not None and libc.malloc_trim(0))


class _Trimmer:
    """Runs :func:`release_free_memory` on a daemon thread, at most once per ``delay`` s,
    after :meth:`soon` was called: after a burst of associations their buffers (PDUs,
    thread stacks, datasets) are free but stay resident until glibc is asked to give
    them back (200 concurrent associations left a node at ~400 MB against a 212 MB
    baseline)."""

    def __init__(self, delay: float = 0.5) -> None:
        self.delay = delay
        self._wanted = threading.Event()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def soon(self) -> None:
        self._wanted.set()
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name="malloc-trim")
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wanted.wait()
            time.sleep(self.delay)  # let the rest of a burst close first
            self._wanted.clear()
            release_free_memory()


_trimmer = _Trimmer()


def release_free_memory_soon() -> None:
    """Ask for :func:`release_free_memory` shortly, on a background thread (cheap to
    call often: bursts are coalesced)."""
    _trimmer.soon()


def freeze_long_lived_objects() -> int:
    """Collect, then move every object alive now out of the cyclic garbage collector's
    reach (``gc.freeze``); return how many were frozen. Called once the node is up: the
    ~200,000 objects of its imports, configuration and models are never garbage, yet a
    full collection walked them all (~120 ms each in a serving node). pynetdicom's
    association server runs one after every 60 connections, so a modality opening an
    association per image paid ~2 ms per association for it, and Python's own full
    collections came on top. Objects frozen and later freed by reference counting are
    freed as before; only one in a reference cycle would stay (hence :func:`refreeze`
    after a configuration reload replaced the models)."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def refreeze() -> int:
    """Unfreeze, collect what became garbage (say the models a reload replaced), and
    freeze what is alive again."""
    gc.unfreeze()
    return freeze_long_lived_objects()


_first_job = threading.Lock()
_first_job_frozen = False


def freeze_after_first_job() -> bool:
    """Freeze again once, after the first job of a process that froze at start-up: what
    that job loaded and keeps (highdicom's tables, model sessions, ~100 MB) stays for the
    process's life, and a full collection would walk it every time. Only new objects are
    walked (the start-up freeze stands). True if this call froze; later calls, and calls
    in a process that never froze (tests embedding the node), do nothing."""
    global _first_job_frozen
    with _first_job:
        if _first_job_frozen or gc.get_freeze_count() == 0:
            return False
        _first_job_frozen = True
    count = freeze_long_lived_objects()
    log.debug("first job done: %d objects frozen", count)
    return True
