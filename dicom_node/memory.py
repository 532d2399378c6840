"""Process-level memory settings for ``serve``."""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os

log = logging.getLogger(__name__)

_M_ARENA_MAX = -8  # glibc mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas (as MALLOC_ARENA_MAX does). Every association and worker
    thread otherwise gets an arena that keeps freed memory: measured here, 5 concurrent
    chest X-ray jobs peaked at 583 MB RSS with the default and 457 MB with 2 arenas.
    An explicit MALLOC_ARENA_MAX in the environment wins. No-op off glibc."""
    if "MALLOC_ARENA_MAX" in os.environ:
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name) if name else None
        ok = bool(libc is not None and libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        ok = False
    log.debug("malloc arenas capped at %d: %s", arenas, ok)
    return ok
