"""A node for hostile-input tests, run with the pynetdicom tweaks on and off."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.node_process import NodeProcess

# Short timeouts so that stuck peers are dropped within a test's time.
HOSTILE_CONFIG: dict[str, Any] = {
    "network_timeout": 4, "acse_timeout": 3, "dimse_timeout": 10,
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
    "logging": {"level": "INFO"},
}
TWEAK_MODES = ["all", "none"]  # DICOM_NODE_TWEAKS


def start_node(workdir: Path, tweaks: str, **config: Any) -> NodeProcess:
    node = NodeProcess(workdir, {**HOSTILE_CONFIG, **config},
                       env={"DICOM_NODE_TWEAKS": tweaks})
    return node.start()


@pytest.fixture(scope="module", params=TWEAK_MODES, ids=lambda m: f"tweaks={m}")
def hostile_node(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node per module and tweak mode; it must survive every test and stop cleanly."""
    node = start_node(tmp_path_factory.mktemp("hostile"), request.param)
    yield node
    code = node.stop()
    assert code == 0, f"node did not stop cleanly ({code}):\n{node.log()[-5000:]}"
