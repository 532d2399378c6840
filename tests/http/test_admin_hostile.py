"""The admin API under attack on a running node: posted YAML that nests without end,
uploads that inflate or decode to gigabytes, a C-ECHO to a peer that never answers the
TCP handshake, and a storm of reprocess requests for one study."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.node_process import NodeProcess

READ = {"Authorization": "Bearer " + "r" * 20}
ADMIN = {"Authorization": "Bearer " + "a" * 20}
MODEL = "demo-cxr-densenet121"


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect
    hangs as it does towards a host that has gone (a real black hole, no mock)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    first = socket.create_connection(("127.0.0.1", port))  # fills the queue
    try:
        yield port
    finally:
        first.close()
        srv.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, blackhole: int) -> Iterator[NodeProcess]:
    cfg = {
        "http": {
            "tokens": [
                {"name": "viewer", "token": "r" * 20, "role": "read"},
                {"name": "ops", "token": "a" * 20, "role": "admin"},
            ],
            "max_upload_mb": 64,
            "max_decoded_mb": 64,
            "web_source": {"quiet_seconds": 1},
        },
        "destinations": [
            {"name": "hole", "kind": "dimse", "ae_title": "HOLE", "host": "127.0.0.1"}
            | {"port": blackhole, "timeout": 5},
        ],
        "routes": [{"name": "to-hole", "action": "forward", "destinations": ["hole"]}],
    }
    root = Path(__file__).resolve().parents[2]
    with NodeProcess(tmp_path_factory.mktemp("admin-hostile"), cfg, root=root) as n:
        yield n


def _no_traceback(node: NodeProcess) -> None:
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # a list that holds itself
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
    ],
    ids=["self-alias", "deep-list", "deep-mapping"],
)
def test_config_check_refuses_endless_nesting(node: NodeProcess, text: str) -> None:
    r = requests.post(
        node.http_url + "/api/config/check",
        data=text.encode(),
        headers={**READ, "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["valid"] is False
    assert r.json()["errors"]
    _no_traceback(node)
