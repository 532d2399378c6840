"""What a node process holds, read from /proc: memory, fds, threads, spool files."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import requests
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tests.support.node_process import NodeProcess
from tests.support.studies import spooled_data
from tests.support.waiting import wait_for, wait_until


def _status(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_kb(pid: int) -> int:
    return _status(pid, "VmRSS")


def threads(pid: int) -> int:
    return _status(pid, "Threads")


def fds(pid: int) -> int:
    """Open fds, except the index's SQLite files: its connection pool grows on its own
    (up to its size) as background threads use it, and is not what a peer can leak."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        n += "index.sqlite" not in target
    return n


def settle(measure: Callable[[], int], target: int, slack: int, timeout: float = 20.0) -> int:
    """``measure()`` once it is within ``slack`` of ``target`` (or its last value after
    ``timeout``): resources are released asynchronously after a connection closes."""
    deadline = time.monotonic() + timeout
    while True:
        value = measure()
        if value <= target + slack or time.monotonic() > deadline:
            return value
        time.sleep(0.2)


def steady(measure: Callable[[], int], quiet: float = 2.0, timeout: float = 20.0) -> int:
    """``measure()`` once it has not changed for ``quiet`` seconds (background work after
    a warm-up: spool files made ready, a group completed, an index connection opened)."""
    deadline = time.monotonic() + timeout
    value, since = measure(), time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = measure()
        if now != value:
            value, since = now, time.monotonic()
        elif time.monotonic() - since >= quiet:
            break
    return value


def echo_ok(
    port: int, called: str = "DICOM_NODE", calling: str = "PROBE", address: str = "127.0.0.1"
) -> bool:
    """Whether a pynetdicom SCU (as ``calling``, from the local ``address``) gets C-ECHO
    Success."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 15
    assoc = ae.associate("127.0.0.1", port, ae_title=called, bind_address=(address, 0))
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_echo()
        return bool(status) and status.Status == 0
    finally:
        assoc.release()


def echo_ok_within(port: int, seconds: float = 20.0, called: str = "DICOM_NODE") -> bool:
    """Whether C-ECHO succeeds within ``seconds``: hostile connections may hold association
    slots until the node's own network/ACSE timeouts (a few seconds in these tests) drop
    them, and on a loaded machine that takes a moment longer."""
    try:
        return wait_until(lambda: echo_ok(port, called), seconds, interval=0.5)
    except TimeoutError:
        return False


def store_ok(port: int, ds, called: str = "DICOM_NODE") -> bool:  # type: ignore[no-untyped-def]
    """Whether a pynetdicom SCU gets C-STORE Success for ``ds``."""
    ae = AE(ae_title="PROBE")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 15
    assoc = ae.associate("127.0.0.1", port, ae_title=called)
    if not assoc.is_established:
        return False
    try:
        status = assoc.send_c_store(ds)
        return bool(status) and status.Status == 0
    finally:
        assoc.release()


def leftovers(incoming: Path) -> list[Path]:
    """Spool files holding data (half-written C-STOREs); empty ones are kept ready."""
    return spooled_data(incoming) if incoming.exists() else []


def spool_leftovers(node: NodeProcess) -> list[Path]:
    """Received datasets the node still holds: spool files with data in ``incoming/``,
    and pynetdicom's own temporary ``.dcm`` files in the node's TMPDIR (where it receives
    datasets with the spool tweak off; see tests/network/nodes.py)."""
    tmp = node.workdir / "tmp"
    temporary = sorted(tmp.glob("*.dcm")) if tmp.exists() else []
    return leftovers(node.data_dir / "incoming") + temporary


def metric(node: NodeProcess, name: str) -> float:
    """The value of the node's unlabelled metric ``name`` on /metrics."""
    text = requests.get(node.http_url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"no {name} in /metrics")


def associations_active(node: NodeProcess) -> int:
    """The node's ``dicom_node_associations_active`` gauge (association threads alive)."""
    return int(metric(node, "dicom_node_associations_active"))


def wait_associations_closed(node: NodeProcess, timeout: float = 30.0) -> None:
    """Wait until the node has ended every association (its threads included): only then
    is a spool file that is still there a leftover rather than one being written."""
    wait_for(lambda: associations_active(node) == 0, timeout, "associations to end", node.log)


def baseline(node: NodeProcess) -> tuple[int, int, int]:
    """RSS (kB), fds and threads of the node once warm: the first association costs
    imports and caches, the first C-STORE starts the pool of ready spool files (open by
    design) and its group completes a moment later."""
    from tests.network.pdus import small_ct

    assert echo_ok_within(node.port)
    assert store_ok(node.port, small_ct())
    first = not getattr(node, "_warmed_up", False)
    node._warmed_up = True  # type: ignore[attr-defined]
    n = steady(lambda: fds(node.pid), quiet=4.0 if first else 1.0)
    return rss_kb(node.pid), n, threads(node.pid)
