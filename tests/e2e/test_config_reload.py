"""`dicom-node config reload` (SIGHUP): a valid file applies to the next group; an invalid
one is refused with its errors and the running configuration stays."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def group_states(data_dir: Path) -> list[tuple[str, str]]:
    return query(data_dir, "select state, route_note from groups order by id")


def reload(node: NodeProcess) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", "config", "reload", "--config", str(node.config_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )


def wait_groups(node: NodeProcess, n: int) -> list[tuple[str, str]]:
    """The groups once there are ``n`` and each has been routed."""

    def routed() -> list[tuple[str, str]]:
        rows = group_states(node.data_dir)
        done = len(rows) >= n and all(state not in ("open", "complete") for state, _ in rows)
        return rows if done else []

    return wait_until(
        routed,
        timeout=30,
        describe=lambda: f"groups: {group_states(node.data_dir)}\n{node.log()[-2000:]}",
    )


def test_reload_applies_new_routes_and_refuses_a_bad_file(tmp_path: Path) -> None:
    base = {
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
        "routes": [{"name": "ignore-ct", "match": {"modality": "CT"}, "action": "discard"}],
    }
    node = NodeProcess(tmp_path / "node", config=base)
    cts = [
        synthetic.write_files(
            list(synthetic.iter_ct_series(1, rows=32, cols=32, seed=s)), tmp_path / f"ct{s}"
        )
        for s in (1, 2, 3)
    ]
    with node:
        storescu(node.port, cts[0], calling="MODALITY", check=True)
        assert wait_groups(node, 1)[0][0] == "discarded"

        # A valid new file: no rule for CT any more -> the next CT is recorded as unrouted.
        cfg = {
            **node.config,
            "routes": [{"name": "only-mr", "match": {"modality": "MR"}, "action": "discard"}],
        }
        node.config_path.write_text(yaml.safe_dump(cfg))
        r = reload(node)
        assert r.returncode == 0, r.stderr
        wait_until(lambda: "configuration reloaded" in node.log(), timeout=10)
        storescu(node.port, cts[1], calling="MODALITY", check=True)
        state, note = wait_groups(node, 2)[1]
        assert state == "unrouted" and "only-mr" in note

        # An invalid file: the CLI names the bad key; the node refuses it and keeps going.
        node.config_path.write_text(
            yaml.safe_dump(
                {**cfg, "routes": [{"name": "x", "destinations": ["nowhere"], "models": ["m"]}]}
            )
        )
        r = reload(node)
        assert r.returncode == 2 and "routes[0].destinations[0]" in r.stderr, r.stderr
        subprocess.run(["kill", "-HUP", str(node.pid)], check=True)  # bypass the CLI check
        wait_until(lambda: "reload refused" in node.log(), timeout=10)
        assert "routes[0].destinations[0]" in node.log()
        storescu(node.port, cts[2], calling="MODALITY", check=True)
        state, note = wait_groups(node, 3)[2]
        assert state == "unrouted" and "only-mr" in note  # the last good config still rules
