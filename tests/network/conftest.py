"""Nodes for the receive tests: one shared node, and one for hostile-input tests run with
the pynetdicom tweaks on and off."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from dicom_node.network import tweaks
from tests.network.nodes import TWEAK_MODES, start_node
from tests.support.node_process import NodeProcess, running_node

NODE_CONFIG: dict[str, Any] = {
    "ae_titles": [
        {"ae_title": "DICOM_NODE", "quiet_seconds": 1.5},
        {
            "ae_title": "RESTRICTED",
            "quiet_seconds": 1,
            "allowed_calling": [
                {"ae_title": "GOODSCU"},
                {"ae_title": "HOSTSCU", "host": "10.9.9.9"},
            ],
        },
        {"ae_title": "BYSERIES", "group_by": "series", "quiet_seconds": 1},
    ],
}


@pytest.fixture(scope="module", params=TWEAK_MODES, ids=lambda m: f"tweaks={m}")
def hostile_node(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[NodeProcess]:
    """One node per module and tweak mode; it must survive every test and stop cleanly.
    It runs exactly the tweaks of its mode: none silently left out (tests of one mode
    would then test the other)."""
    node = start_node(tmp_path_factory.mktemp("hostile"), request.param)
    log = node.log()
    applied = ", ".join(sorted(tweaks.enabled({tweaks.ENV: request.param}))) or "none"
    assert f"pynetdicom tweaks: {applied}\n" in log, log[-3000:]
    for failure in ("NOT installed", "NOT tracked", "not applied"):
        assert failure not in log, log[-3000:]
    yield node
    code = node.stop()
    assert code == 0, f"node did not stop cleanly ({code}):\n{node.log()[-5000:]}"


# Package scope: stopped once tests/network is done (an idle node costs CPU until then).
@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node subprocess shared by the tests that do not need their own."""
    yield from running_node(tmp_path_factory.mktemp("node"), NODE_CONFIG)
