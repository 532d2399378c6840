"""glibc malloc tuning for ``serve``: arena cap, mmap threshold, trimming; and which heavy
modules the serving process leaves unimported until a job needs them."""

from __future__ import annotations

import ctypes
import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from ai.bundled.cache import DEMO_NAME
from dicom_node import synthetic
from dicom_node.memory import (
    SERVING_MMAP_THRESHOLD,
    limit_malloc_arenas,
    release_free_memory,
    set_mmap_threshold,
)
from tests.support.dcmtk import storescu
from tests.support.index import job_rows
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

ROOT = Path(__file__).resolve().parents[1]
glibc_only = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc only")


@glibc_only
def test_cap_applies_on_glibc(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    monkeypatch.delenv("GLIBC_TUNABLES", raising=False)
    assert limit_malloc_arenas(2) is True


def test_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert limit_malloc_arenas(2) is False
    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "65536")
    assert set_mmap_threshold(SERVING_MMAP_THRESHOLD) is False
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.setenv("GLIBC_TUNABLES", "glibc.malloc.mmap_threshold=65536")
    assert set_mmap_threshold(SERVING_MMAP_THRESHOLD) is False


def _libc() -> ctypes.CDLL:
    libc = ctypes.CDLL(None)
    libc.malloc.restype = libc.sbrk.restype = ctypes.c_void_p
    libc.malloc.argtypes = [ctypes.c_size_t]
    libc.sbrk.argtypes = [ctypes.c_ssize_t]
    libc.free.argtypes = [ctypes.c_void_p]
    return libc


@glibc_only
def test_mmap_threshold_decides_heap_or_own_mapping() -> None:
    """In a fresh process (where no free heap chunk can serve the request): 8 MiB gets its
    own mapping under the start-up threshold and comes from the heap under the serving
    one."""
    code = (
        "from dicom_node.memory import *\n"
        "from tests.test_memory import _libc\n"
        "libc = _libc()\n"
        "def on_heap(size):  # main thread: the heap ends at sbrk(0)\n"
        "    block = libc.malloc(size)\n"
        "    inside = block < libc.sbrk(0)\n"
        "    libc.free(block)\n"
        "    return inside\n"
        "assert set_mmap_threshold(STARTUP_MMAP_THRESHOLD)\n"
        "assert not on_heap(8 << 20)\n"
        "assert set_mmap_threshold(SERVING_MMAP_THRESHOLD)\n"
        "assert on_heap(8 << 20)\n"
    )
    env = {
        k: v for k, v in os.environ.items() if k not in ("MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")
    }
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, check=True, timeout=60)


@glibc_only
def test_release_returns_freed_heap_pages() -> None:
    libc = _libc()
    # 64 KiB blocks stay on the heap; the last one pins the freed ones below the top,
    # where only malloc_trim can give their pages back.
    blocks = [libc.malloc(64 * 1024) for _ in range(256)]
    for b in blocks:
        ctypes.memset(b, 1, 64 * 1024)
    for b in blocks[:-1]:
        libc.free(b)
    try:
        assert release_free_memory() is True
    finally:
        libc.free(blocks[-1])


def test_serving_imports_leave_onnx_and_highdicom_for_later() -> None:
    """``serve`` imports the node; onnx (demo build) and highdicom (result writing) load
    only when first needed, and then on first use through the same names."""
    code = (
        "import sys\n"
        "import dicom_node.cli, dicom_node.node\n"
        "late = sorted({'onnx', 'highdicom', 'sr_writer.writer'} & set(sys.modules))\n"
        "assert not late, late\n"
        "import sr_writer\n"
        "from sr_writer import ResultObjects, write_results\n"
        "assert 'highdicom' in sys.modules and callable(write_results)\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


def test_frozen_objects_are_left_alone_and_refreeze_collects_the_dropped() -> None:
    # In a child process: gc.freeze is process-wide.
    code = """
import gc, weakref
from dicom_node.memory import freeze_long_lived_objects, refreeze

class Node:
    pass

def cycle():
    a, b = Node(), Node()
    a.other, b.other = b, a
    return a

old = cycle()
gone_old = weakref.ref(old)
assert freeze_long_lived_objects() > 1000   # the imports, at least
frozen = gc.get_freeze_count()
gc.collect()
assert gc.get_freeze_count() == frozen      # a full collection leaves them alone
new = cycle()
gone_new = weakref.ref(new)
del new
gc.collect()
assert gone_new() is None                   # what comes after is collected as usual
del old
gc.collect()
assert gone_old() is not None               # a frozen cycle stays until refreeze
refreeze()
assert gone_old() is None
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


def test_the_first_job_refreezes_once_and_only_a_frozen_process() -> None:
    # In a child process: gc.freeze is process-wide.
    code = """
import gc, threading
from dicom_node.memory import freeze_after_first_job, freeze_long_lived_objects

class Model:
    pass

assert freeze_after_first_job() is False    # nothing frozen yet: not a serving process
assert gc.get_freeze_count() == 0
freeze_long_lived_objects()
at_start = gc.get_freeze_count()
loaded = [Model() for _ in range(5000)]     # what the first job loads and keeps
done = []
workers = [threading.Thread(target=lambda: done.append(freeze_after_first_job()))
           for _ in range(4)]                # jobs ending at once on several workers
for w in workers:
    w.start()
for w in workers:
    w.join()
assert sorted(done) == [False, False, False, True], done
after_first = gc.get_freeze_count()
assert after_first >= at_start + 5000, (at_start, after_first)
more = [Model() for _ in range(100)]
assert freeze_after_first_job() is False    # once per process
assert gc.get_freeze_count() == after_first
print("ok")
"""
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.stdout.strip() == "ok", done.stderr


def _frozen(node: object) -> float:
    text = requests.get(node.http_url + "/metrics", timeout=10).text  # type: ignore[attr-defined]
    for family in text_string_to_metric_families(text):
        if family.name == "dicom_node_gc_frozen_objects":
            return family.samples[0].value
    raise AssertionError("no dicom_node_gc_frozen_objects on /metrics")


@pytest.mark.peer
def test_a_serving_node_freezes_again_after_its_first_job(tmp_path: Path) -> None:
    """``serve`` froze at start-up; after its first job (the demo model on one CR image,
    sent with storescu and delivered to a DCMTK storescp) it froze what that job loaded
    too (highdicom, first imported by the result writing): /metrics shows more frozen
    objects."""
    files = synthetic.write_files([synthetic.make_cr(seed=90)], tmp_path / "study")
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        cfg = {
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
            "destinations": [
                {"name": "PACS", "kind": "dimse", "ae_title": "PACS"}
                | {"host": "127.0.0.1", "port": pacs.port}
            ],
            "routes": [{"name": "cxr", "models": [DEMO_NAME], "destinations": ["PACS"]}],
        }
        with NodeProcess(tmp_path / "node", cfg) as node:
            at_start = _frozen(node)
            assert at_start > 1000  # serve froze its imports, configuration and models
            storescu(node.port, files, calling="MODALITY", check=True)
            wait_until(
                lambda: [r[1] for r in job_rows(node.data_dir)] == ["done"],
                timeout=120,
                interval=0.3,
                describe=node.log,
            )
            wait_until(lambda: _frozen(node) > at_start, timeout=30, describe=node.log)
