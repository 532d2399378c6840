"""Nodes for the hostile-input tests: short timeouts, pynetdicom tweaks on or off."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.support.node_process import NodeProcess

# Short timeouts so that stuck peers are dropped within a test's time.
HOSTILE_CONFIG: dict[str, Any] = {
    "network_timeout": 4,
    "acse_timeout": 3,
    "dimse_timeout": 10,
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
    "logging": {"level": "INFO"},
}
TWEAK_MODES = ["all", "none"]  # DICOM_NODE_TWEAKS


def start_node(workdir: Path, tweaks: str, **config: Any) -> NodeProcess:
    # Its own TMPDIR: with the spool tweak off, pynetdicom receives datasets there, and a
    # test must see what is left of them (probe.spool_leftovers).
    tmp = workdir / "tmp"
    tmp.mkdir(parents=True, exist_ok=True)
    env = {"DICOM_NODE_TWEAKS": tweaks, "TMPDIR": str(tmp)}
    return NodeProcess(workdir, {**HOSTILE_CONFIG, **config}, env=env).start()
