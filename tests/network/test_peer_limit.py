"""One peer address cannot take every association slot: beyond
``max_associations_per_peer`` (by default half of ``max_associations``) its associations
are rejected (transient, service provider, local limit exceeded), and a sender at another
address is still served. Real pynetdicom peers, each bound to its own loopback address."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.sop_class import Verification

from dicom_node.settings.root import NodeConfig
from tests.network import probe
from tests.network.nodes import start_node
from tests.support.waiting import wait_for

SLOTS = 4  # max_associations of the node under test; its per-peer default is half
FLOODER, PACS = "127.0.0.1", "127.0.0.2"
PEER_LIMIT_METRIC = 'dicom_node_associations_rejected_total{reason="peer_limit"}'


def _associate(port: int, address: str, title: str) -> Association:
    """A C-ECHO association from ``address`` (the client socket is bound to it)."""
    ae = AE(ae_title=title)
    ae.add_requested_context(Verification)
    ae.acse_timeout = ae.network_timeout = ae.dimse_timeout = 15
    return ae.associate("127.0.0.1", port, ae_title="DICOM_NODE", bind_address=(address, 0))


def test_one_address_cannot_take_every_slot(tmp_path: Path) -> None:
    """The flooder opens more associations than the node has slots and holds them (it took
    all of them, and the PACS's C-ECHO was rejected local-limit-exceeded); it must get
    only its share, each further one rejected with one WARNING for the episode, while the
    PACS is served."""
    node = start_node(tmp_path, "all", max_associations=SLOTS)
    held: list[Association] = []
    try:
        rejected = []
        for _ in range(SLOTS + 2):
            assoc = _associate(node.port, FLOODER, "FLOODER")
            (held if assoc.is_established else rejected).append(assoc)
        assert probe.echo_ok(node.port, calling="PACS", address=PACS), node.log()[-3000:]
        assert len(held) == SLOTS // 2
        rj = [(a.acceptor.primitive.result, a.acceptor.primitive.result_source) for a in rejected]
        diagnostics = [a.acceptor.primitive.diagnostic for a in rejected]
        assert rj == [(0x02, 0x03)] * (SLOTS + 2 - len(held)) and set(diagnostics) == {0x02}
        assert probe.metric(node, PEER_LIMIT_METRIC) == len(rejected)
        warnings = [line for line in node.log().splitlines() if "_per_peer" in line]
        assert len(warnings) == 1, node.log()[-3000:]  # one per episode, not per rejection
        assert " WARNING " in warnings[0] and f"@{FLOODER}" in warnings[0], warnings
        # Its associations released, the flooder is served again (the node ends their
        # threads a moment after the release).
        for assoc in held:
            assoc.release()
        held.clear()
        served = lambda: probe.echo_ok(node.port, calling="FLOODER", address=FLOODER)  # noqa: E731
        wait_for(served, 20, "a C-ECHO", node.log)
    finally:
        for assoc in held:
            assoc.release()
        assert node.stop() == 0, node.log()[-3000:]


def test_the_node_at_its_limit_logs_one_warning_per_episode(tmp_path: Path) -> None:
    """Every slot taken (by several addresses, each within its share): each further
    association is rejected local-limit-exceeded and counted, with one WARNING for the
    episode (it was one per rejection: a sender retrying in a loop flooded the log)."""
    node = start_node(tmp_path, "all", max_associations=SLOTS)
    held: list[Association] = []
    try:
        for n in range(SLOTS):
            held.append(_associate(node.port, f"127.0.0.{10 + n}", "HOLDER"))
        assert all(a.is_established for a in held), node.log()[-3000:]
        rejected = [_associate(node.port, PACS, "PACS") for _ in range(3)]
        assert not any(a.is_established for a in rejected)
        metric = 'dicom_node_associations_rejected_total{reason="local_limit"}'
        assert probe.metric(node, metric) == 3
        warnings = [line for line in node.log().splitlines() if "(max_associations)" in line]
        assert len(warnings) == 1 and " WARNING " in warnings[0], node.log()[-3000:]
    finally:
        for assoc in held:
            assoc.release()
        assert node.stop() == 0, node.log()[-3000:]


def test_per_peer_default_is_half_of_max_associations() -> None:
    assert NodeConfig().associations_per_peer() == 16
    assert NodeConfig(max_associations=5).associations_per_peer() == 2
    assert NodeConfig(max_associations=1).associations_per_peer() == 1
    assert NodeConfig(max_associations_per_peer=32).associations_per_peer() == 32
    with pytest.raises(ValidationError):
        NodeConfig(max_associations_per_peer=0)
