"""Hostile PDUs against a real node (raw sockets): lying lengths, oversized P-DATA, slow
and idle senders, unknown presentation contexts, invalid state-machine events, odd AE
titles. Each must be refused (A-ABORT / A-ASSOCIATE-RJ / closed socket) without growing
the node's memory beyond one PDU per association, leaking fds, threads or spool files,
and the node must keep serving. Run with the pynetdicom tweaks on and off."""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from pathlib import Path

import pytest

from dicom_node.network import waiting
from tests.network import pdus, probe
from tests.network.nodes import HOSTILE_CONFIG, TWEAK_MODES, start_node
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_for

MAX_PDU = 1_048_576  # the node's default max_pdu_bytes
SLOTS = 32  # the node's default max_associations
MB = 1024


def _assert_recovered(node: NodeProcess, fds: int, threads: int) -> None:
    assert probe.echo_ok_within(node.port), node.log()[-3000:]
    assert probe.settle(lambda: probe.fds(node.pid), fds, 2) <= fds + 2
    assert probe.settle(lambda: probe.threads(node.pid), threads, 2) <= threads + 2
    # received datasets: the spool in incoming/ and, with the spool tweak off,
    # pynetdicom's temporary files in the node's TMPDIR
    assert probe.settle(lambda: len(probe.spool_leftovers(node)), 0, 0) == 0


def _established(sock: socket.socket) -> None:
    sock.sendall(pdus.associate_rq())
    first = next(pdus.read_pdus(sock))
    assert first.kind == pdus.A_ASSOCIATE_AC, first


def test_lying_pdu_length_allocates_nothing(hostile_node: NodeProcess) -> None:
    node = hostile_node
    rss0, fds0, threads0 = probe.baseline(node)
    socks = []
    for claimed in (256 << 20, 256 << 20):
        s = pdus.connect(node.port)
        s.sendall(b"\x01\x00" + claimed.to_bytes(4, "big"))  # before any association
        socks.append(s)
    time.sleep(1.0)
    grown = probe.rss_kb(node.pid) - rss0
    replies = [list(pdus.read_pdus(s, timeout=10)) for s in socks]
    for s in socks:
        s.close()
    assert grown <= 2 * MAX_PDU // 1024 + 16 * MB, f"RSS grew {grown} kB"
    assert all(r and r[0].kind == pdus.A_ABORT for r in replies), replies
    _assert_recovered(node, fds0, threads0)


# Connections beyond max_associations are accepted and read up to their A-ASSOCIATE-RQ
# (only then can they be rejected), so nothing bounds how many a peer opens.
CLAIMING = 48


def test_a_claimed_length_costs_nothing_before_its_bytes_arrive(tmp_path: Path) -> None:
    """Each connection sends only a PDU header claiming the largest length the node
    accepts (1 MiB: an A-ASSOCIATE-RQ's limit, and the maximum P-DATA) and then waits:
    memory must grow by what arrived, not by what was claimed (it grew by ~1 MiB per
    connection for 6 bytes sent). ACSE and network timeouts outlast the test."""
    node = start_node(tmp_path, "all", network_timeout=60, acse_timeout=60)
    try:
        rss0, fds0, threads0 = probe.baseline(node)
        socks = [pdus.connect(node.port) for _ in range(CLAIMING)]
        for i, s in enumerate(socks):
            kind = (0x01, 0x04)[i % 2]  # before any association: both are read
            s.sendall(bytes([kind, 0]) + MAX_PDU.to_bytes(4, "big"))
        try:
            # every connection is being read by then (its association thread is alive)
            wait_for(
                lambda: probe.associations_active(node) >= CLAIMING,
                30,
                "an association thread for every connection",
                node.log,
            )
            grown = probe.steady(lambda: probe.rss_kb(node.pid), quiet=1, timeout=5) - rss0
        finally:
            for s in socks:
                s.close()
        assert grown <= 16 * MB, f"RSS grew {grown} kB for {CLAIMING} PDU headers"
        _assert_recovered(node, fds0, threads0)
    finally:
        assert node.stop() == 0, node.log()[-3000:]


# What a port scanner, a load balancer's TCP health check or a broken peer does before
# (or instead of) an A-ASSOCIATE-RQ: each ends the connection with no association.
UNASSOCIATED = {
    "connect-close": b"",
    "half-header": b"\x01\x00\x00",
    "header-close": b"\x01\x00\x00\x00\x10\x00",
    "half-rq": pdus.associate_rq()[:40],
    "a-abort": pdus.ABORT_RQ,
    "unknown-pdu": b"\xff\x00\x00\x00\x00\x00",
}


@pytest.mark.parametrize("tweaks", TWEAK_MODES)
def test_connections_closed_before_associating_free_their_slots_at_once(
    tmp_path: Path, tweaks: str
) -> None:
    """Three times max_associations connections that close before associating: their
    slots must come free as they close, not after acse_timeout (each held one, and two
    threads, for the full 120 s here: 4 port probes locked every sender out)."""
    node = start_node(tmp_path, tweaks, max_associations=4, acse_timeout=120, network_timeout=120)
    try:
        _, fds0, threads0 = probe.baseline(node)
        for sent in list(UNASSOCIATED.values()) * 2:
            with pdus.connect(node.port) as s:
                s.sendall(sent)
                with contextlib.suppress(OSError):  # the node's A-ABORT, if it sends one
                    s.shutdown(socket.SHUT_WR)
                    list(pdus.read_pdus(s, timeout=5))
        wait_for(lambda: probe.associations_active(node) == 0, 20, "slots to free", node.log)
        assert probe.store_ok(node.port, pdus.small_ct())
        assert probe.settle(lambda: probe.threads(node.pid), threads0, 2) <= threads0 + 2
        assert probe.settle(lambda: probe.fds(node.pid), fds0, 2) <= fds0 + 2
    finally:
        assert node.stop() == 0, node.log()[-3000:]


def test_pdata_beyond_max_pdu_is_aborted_not_stored(hostile_node: NodeProcess) -> None:
    node = hostile_node
    rss0, fds0, threads0 = probe.baseline(node)
    ds = pdus.small_ct()
    with pdus.connect(node.port) as sock:
        _established(sock)
        sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))))
        big = pdus.dataset_bytes(ds) + b"\0" * (16 << 20)
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x02, big)))
        got = list(pdus.read_pdus(sock))
    assert pdus.store_statuses(got) == []
    assert got and got[-1].kind == pdus.A_ABORT, got
    assert probe.rss_kb(node.pid) - rss0 <= 2 * MAX_PDU // 1024 + 16 * MB
    assert not list((node.data_dir / "instances").rglob(f"{ds.SOPInstanceUID}*"))
    _assert_recovered(node, fds0, threads0)


def _unknown_context_store(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [
        pdus.p_data(pdus.pdv(99, 0x03, pdus.store_command(ds))),
        pdus.p_data(pdus.pdv(99, 0x02, pdus.dataset_bytes(ds))),
    ]


def _fragments_on_other_context(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [
        pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))),
        pdus.p_data(pdus.pdv(7, 0x02, pdus.dataset_bytes(ds))),
    ]


def _fragments_on_echo_context(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    return [
        pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))),
        pdus.p_data(pdus.pdv(pdus.ECHO_CX, 0x02, pdus.dataset_bytes(ds))),
    ]


def _second_command_before_dataset(ds) -> list[bytes]:  # type: ignore[no-untyped-def]
    command = pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds)))
    return [command, command, pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x02, pdus.dataset_bytes(ds)))]


@pytest.mark.parametrize(
    "attack",
    [
        _unknown_context_store,
        _fragments_on_other_context,
        _fragments_on_echo_context,
        _second_command_before_dataset,
    ],
)
def test_pdata_on_a_context_never_negotiated_is_aborted(hostile_node: NodeProcess, attack) -> None:  # type: ignore[no-untyped-def]
    node = hostile_node
    _, fds0, threads0 = probe.baseline(node)
    ds = pdus.small_ct()
    got = pdus.exchange_associated(node.port, *attack(ds))
    assert got[0].kind == pdus.A_ASSOCIATE_AC
    assert pdus.store_statuses(got) == []  # never Success (nor any answer)
    assert got[-1].kind == pdus.A_ABORT, got
    assert not list((node.data_dir / "instances").rglob(f"{ds.SOPInstanceUID}*"))
    _assert_recovered(node, fds0, threads0)


# A log entry a peer tries to forge through a name it sends
FORGED = "2026-01-01 00:00:00,000 WARNING dicom_node: FORGED"  # under 64 bytes with 1.2.3

INVALID_SEQUENCES = {
    # A second A-ASSOCIATE-RQ on an established association
    "associate_twice": [pdus.associate_rq(), pdus.associate_rq()],
    # An A-ASSOCIATE-AC sent to the acceptor
    "ac_to_acceptor": [pdus.pdu(pdus.A_ASSOCIATE_AC, pdus.associate_rq()[6:])],
    # A release response nobody asked for, then data
    "release_rp_unasked": [
        pdus.associate_rq(),
        pdus.pdu(pdus.A_RELEASE_RP, bytes(4)),
        pdus.p_data(pdus.pdv(1, 0x03, pdus.echo_command())),
    ],
    # P-DATA before any association
    "pdata_first": [pdus.p_data(pdus.pdv(1, 0x03, pdus.echo_command()))],
    # A-ABORT and more in one write (events after the state machine went idle)
    "after_abort": [
        pdus.associate_rq()
        + pdus.ABORT_RQ
        + pdus.p_data(pdus.pdv(1, 0x03, pdus.echo_command()))
        + pdus.RELEASE_RQ
    ],
    # Unknown PDU type, and a truncated A-ASSOCIATE-RQ body
    "unknown_type": [b"\x09\x00\x00\x00\x00\x02\x00\x00"],
    "truncated_rq": [pdus.pdu(0x01, pdus.associate_rq()[6:40])],
    # No presentation context proposed (PS3.8 9.3.2 requires one or more)
    "no_contexts": [pdus.associate_rq(contexts=())],
    # An Application Context Name other than DICOM's, or none (PS3.8 9.3.2 requires one;
    # pynetdicom accepted both and served C-ECHO on them)
    "other_app_context": [pdus.associate_rq(app_context=b"1.2.3.4")],
    "no_app_context": [pdus.associate_rq(app_context=None)],
    # A newline and a fake log entry in it: pynetdicom and pydicom log the name as sent
    "forged_log_line": [pdus.associate_rq(app_context=b"1.2.3\n" + FORGED.encode())],
    # Non-ASCII and control characters in AE titles
    "non_ascii_called": [pdus.associate_rq(called="NÖDE_ÿ".encode("latin-1"))],
    "non_ascii_calling": [pdus.associate_rq(calling="CALLÉ€".encode())],
    "nul_calling": [pdus.associate_rq(calling=b"\0\0\0\0")],
    "blank_called": [pdus.associate_rq(called=b" " * 16)],
}


# Refused with an A-ASSOCIATE-RJ (result, source, diagnostic: PS3.8 9.3.4): permanent,
# by the service user, no reason given (nothing to negotiate; pynetdicom accepted
# these and held them until the network timeout), or application context name not
# supported.
REJECTED = {
    "truncated_rq": bytes([1, 1, 1]),
    "no_contexts": bytes([1, 1, 1]),
    "other_app_context": bytes([1, 1, 2]),
    "no_app_context": bytes([1, 1, 2]),
    "forged_log_line": bytes([1, 1, 2]),
}


@pytest.mark.parametrize("name", list(INVALID_SEQUENCES))
def test_invalid_sequences_are_refused_cleanly(hostile_node: NodeProcess, name: str) -> None:
    node = hostile_node
    _, fds0, threads0 = probe.baseline(node)
    logged = len(node.log())
    # The node ends the connection itself; the read timeout (between bytes) bounds it.
    got = pdus.exchange(node.port, *INVALID_SEQUENCES[name], timeout=30)
    # One log line per expected failure, tracebacks at DEBUG (the node logs at INFO):
    # pynetdicom logged an ERROR, with a traceback for a non-ASCII AE title, before the
    # node's own WARNING for each AE title it refused.
    log = node.log()[logged:]
    assert "Traceback" not in log and " ERROR pynetdicom.utils" not in log, log
    # What a peer sends never starts a line of the log (control characters are escaped).
    assert not [line for line in log.splitlines() if line.startswith(FORGED)], log
    if name.startswith(("non_ascii", "nul", "blank")):
        assert log.count("aborting association from 127.0.0.1") == 1, log
    if name in REJECTED:
        assert [(p.kind, p.body[1:]) for p in got] == [(pdus.A_ASSOCIATE_RJ, REJECTED[name])]
        assert log.count("rejecting association from HOSTILE") == 1, log
    assert pdus.store_statuses(got) == []
    if name == "after_abort":  # the peer aborted first: the node owes it nothing
        assert all(p.kind in (pdus.A_ASSOCIATE_AC, pdus.A_ABORT) for p in got), got
    else:  # refused, associated or not: never a silent close
        assert got and got[-1].kind in (pdus.A_ABORT, pdus.A_ASSOCIATE_RJ), got
    _assert_recovered(node, fds0, threads0)


def test_slow_and_idle_senders_do_not_lock_others_out(hostile_node: NodeProcess) -> None:
    # The module's node (one per tweak mode, the default max_associations, SLOTS): it must
    # drop all of them, recover and stop cleanly (conftest.hostile_node), as on a fresh one.
    node = hostile_node
    assert "max_associations" not in node.config
    _, fds0, threads0 = probe.baseline(node)
    half = pdus.associate_rq()[:40]
    slow = [pdus.connect(node.port) for _ in range(SLOTS + 1)]
    for s in slow:
        s.sendall(half)
    idle = [pdus.connect(node.port) for _ in range(10)]
    deadline = time.monotonic() + 30
    for s in slow + idle:  # the node drops each one (ARTIM / network timeout)
        s.settimeout(max(deadline - time.monotonic(), 0.1))
        try:
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass
        s.close()
    _assert_recovered(node, fds0, threads0)
    assert probe.store_ok(node.port, pdus.small_ct())


@pytest.mark.parametrize("tweaks", TWEAK_MODES)
def test_idle_connections_never_lock_senders_out(tmp_path: Path, tweaks: str) -> None:
    """Connections that send nothing, or half an A-ASSOCIATE-RQ, and then wait (for zero
    bytes, 40 of them held every association slot until the ACSE timeout, again and
    again): a sender must be served while they wait, the ones waiting longest are
    dropped to make room, and what they cost stays bounded. Small limits keep it cheap
    with pynetdicom's own polling (tweaks off); timeouts outlast the test."""
    slots, waiting_max = 4, 8
    node = start_node(
        tmp_path,
        tweaks,
        network_timeout=60,
        acse_timeout=60,
        max_associations=slots,
        max_waiting_connections=waiting_max,
    )
    held: list[socket.socket] = []
    try:
        _, fds0, threads0 = probe.baseline(node)
        for _ in range(slots + 1):
            s = pdus.connect(node.port)
            s.sendall(pdus.associate_rq()[:40])
            held.append(s)
        held += [pdus.connect(node.port) for _ in range(3 * (slots + waiting_max))]
        time.sleep(waiting.GRACE + 0.5)  # every one of them has waited past the grace
        assert probe.echo_ok(node.port), node.log()[-3000:]
        assert probe.store_ok(node.port, pdus.small_ct())
        # Over the limit only by connections younger than the grace (accepted late, as
        # the node got to them): never beyond BURST times it.
        most = waiting.BURST * waiting_max
        assert probe.metric(node, "dicom_node_connections_waiting") <= most
        assert probe.metric(node, "dicom_node_connections_dropped_total") >= len(held) - most
        assert probe.settle(lambda: probe.threads(node.pid), threads0, 2 * most) <= (
            threads0 + 2 * most
        )
        assert node.log().count("dropped the longest waiting") == 1  # one line per episode
    finally:
        for s in held:
            s.close()
    _assert_recovered(node, fds0, threads0)
    assert node.stop() == 0, node.log()[-3000:]


def _low_fd_limit() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))


@pytest.mark.slow
@pytest.mark.parametrize("tweaks", TWEAK_MODES)
def test_many_unknown_context_connections_under_a_low_fd_limit(tmp_path: Path, tweaks: str) -> None:
    node = NodeProcess(
        tmp_path,
        {**HOSTILE_CONFIG, "network_timeout": 10, "acse_timeout": 5},
        env={"DICOM_NODE_TWEAKS": tweaks},
        preexec_fn=_low_fd_limit,
    )
    node.start()
    try:
        _, fds0, threads0 = probe.baseline(node)
        ds = pdus.small_ct()
        for _ in range(180):
            got = pdus.exchange_associated(node.port, *_unknown_context_store(ds))
            assert pdus.store_statuses(got) == []
        _assert_recovered(node, fds0, threads0)
        assert probe.store_ok(node.port, pdus.small_ct())
    finally:
        assert node.stop() == 0, node.log()[-3000:]
