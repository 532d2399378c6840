"""The DUL loop pause follows the association's traffic (dicom_node.network.loop_delay),
on a node in this process with a pynetdicom peer: short while PDUs arrive, long once
the association is quiet, short again with the next request; stock with the tweak off."""

from __future__ import annotations

import gc
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.network import loop_delay
from dicom_node.node import Node
from dicom_node.settings.root import validate_config
from dicom_node.synthetic import iter_ct_series
from tests.support.ports import free_port
from tests.support.waiting import wait_until


def _start(tmp_path: Path) -> Node:
    cfg = validate_config(
        {
            "data_dir": str(tmp_path / "data"),
            "port": free_port(),
            "bind_address": "127.0.0.1",
            "disk_reserve_mb": 0,
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 60}],
            "models": {"bundled": False},
        }
    )
    node = Node(cfg)
    node.start()
    return node


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    node = _start(tmp_path)
    try:
        yield node
    finally:
        node.stop()


def _associate(node: Node) -> Any:
    ae = AE(ae_title="PACER")
    ae.add_requested_context(Verification)
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    assoc = ae.associate("127.0.0.1", node.config.port, ae_title="DICOM_NODE")
    assert assoc.is_established
    return assoc


def _served(node: Node) -> Any:
    """The node's side of its one association."""
    wait_until(lambda: len(node.scp.ae.active_associations) == 1, timeout=10)
    return node.scp.ae.active_associations[0].dul


def test_the_pause_is_long_when_quiet_and_short_while_pdus_arrive(
    node: Node, monkeypatch: pytest.MonkeyPatch
) -> None:
    peer = _associate(node)
    try:
        dul = _served(node)
        # quiet after the association: the long pause
        wait_until(lambda: dul._run_loop_delay == loop_delay.IDLE_DELAY, timeout=10)
        # with "quiet" made an hour, a request's PDUs leave the short pause behind
        monkeypatch.setattr(loop_delay, "IDLE_AFTER", 3600.0)
        assert int(peer.send_c_echo().Status) == 0
        assert dul._run_loop_delay == loop_delay.LOOP_DELAY
        [ds] = list(iter_ct_series(1, rows=64, cols=64))
        assert int(peer.send_c_store(ds).Status) == 0
        assert dul._run_loop_delay == loop_delay.LOOP_DELAY
        # and back to the long pause once it is quiet again
        monkeypatch.setattr(loop_delay, "IDLE_AFTER", 0.05)
        wait_until(lambda: dul._run_loop_delay == loop_delay.IDLE_DELAY, timeout=10)
    finally:
        peer.release()


def test_with_the_tweak_off_the_pause_is_pynetdicoms(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(os.environ, "DICOM_NODE_TWEAKS", "-loop_delay")
    node = _start(tmp_path)
    try:
        peer = _associate(node)
        try:
            dul = _served(node)
            assert int(peer.send_c_echo().Status) == 0
            assert dul._run_loop_delay == 0.001  # pynetdicom's own default
            assert dul not in loop_delay._last_pdu
        finally:
            peer.release()
    finally:
        node.stop()


class _Dul:
    """Stands in for a DUL thread's pause, to place a PDU's arrival at one instant of the
    watcher's pass (a thread interleaving no peer can aim at): when armed, the watcher's
    next look at this association's long pause is the moment a PDU arrives on it."""

    def __init__(self) -> None:
        self.delay = 0.001
        self.armed = False
        self.arrived = threading.Event()

    @property
    def _run_loop_delay(self) -> float:
        seen = self.delay
        if self.armed and seen == loop_delay.IDLE_DELAY and _on_watcher():
            self.armed = False
            loop_delay.note_traffic(self)  # the DUL thread's PDU, right after the look
            self.arrived.set()
        return seen

    @_run_loop_delay.setter
    def _run_loop_delay(self, value: float) -> None:
        self.delay = value


def _on_watcher() -> bool:
    return threading.current_thread().name == "dul-pacing"


def test_a_pdu_arriving_while_the_watcher_looks_does_not_leave_the_short_pause_for_good(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A PDU arriving on a quiet association while the watcher's pass looks at it (and
    finds no other association on the short pause) must not leave that association on
    the short pause once it is quiet again: it stayed there (5,000 wake-ups a second)
    until a PDU arrived on some association."""
    monkeypatch.setattr(loop_delay, "IDLE_AFTER", 0.0)  # every pass lengthens every pause
    quiet, busy = _Dul(), _Dul()
    try:
        for dul in (quiet, busy):
            assert loop_delay.apply(SimpleNamespace(dul=dul))
        wait_until(lambda: quiet.delay == busy.delay == loop_delay.IDLE_DELAY, timeout=10)
        quiet.armed = True
        loop_delay.note_traffic(busy)  # a pass runs: it looks at the quiet one too
        assert quiet.arrived.wait(10)
        # quiet for IDLE_AFTER (0 s) once more: the next pass must lengthen it
        wait_until(lambda: quiet.delay == loop_delay.IDLE_DELAY, timeout=5)
    finally:
        for dul in (quiet, busy):
            loop_delay._last_pdu.pop(dul, None)


def _ended_duls() -> int:
    """Paced DUL threads that have finished and are still alive as objects."""
    gc.collect()
    return sum(1 for dul in list(loop_delay._last_pdu) if not dul.is_alive())


def test_ended_associations_are_not_kept_alive(node: Node) -> None:
    """Once its association ended, nothing of the tweak keeps a DUL (and with it the whole
    association: ~155 kB each, 1.4 MB without the contexts tweak) alive: the watcher
    kept every association it ever looked at, for as long as the node ran."""
    for _ in range(10):
        peer = _associate(node)
        assert int(peer.send_c_echo().Status) == 0
        peer.release()
    wait_until(lambda: not node.scp.ae.active_associations, timeout=10)
    wait_until(lambda: _ended_duls() == 0, timeout=10)
