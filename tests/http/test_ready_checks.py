"""/ready fails on each of its checks for a real cause, and names only that check:
incoming/ out of inodes (store_writable), the PostgreSQL index's server stopped
(database), the DIMSE accept loop ended or the listener stopped (dimse_listener). The
models check is in test_tokened_node.py, the disk reserve in test_health_metrics.py."""

from __future__ import annotations

import socketserver
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from dicom_node.node import Node
from tests.http.support import failing, inprocess_node
from tests.support import postgres
from tests.support.node_process import NodeProcess
from tests.support.ports import accepting
from tests.support.tmpfs import mounted_tmpfs, use_every_inode


@pytest.mark.skipif(postgres.available() is not None, reason=str(postgres.available()))
def test_not_ready_without_inodes_in_incoming_then_without_its_database(tmp_path: Path) -> None:
    """One node (PostgreSQL index, incoming/ on a small tmpfs) for both causes, in turn."""
    with postgres.PostgresServer() as pg:
        cfg = {"database_url": pg.create_database(), "models": {"bundled": False}}
        proc = NodeProcess(tmp_path / "node", cfg)
        proc.data_dir.mkdir(parents=True)
        tmpfs = mounted_tmpfs(proc.data_dir / "incoming", "size=4m,nr_inodes=64")
        with tmpfs as incoming, proc:
            url = proc.http_url + "/ready"
            assert requests.get(url, timeout=10).status_code == 200
            fillers = use_every_inode(incoming)
            try:
                problems = failing(requests.get(url, timeout=10))
            finally:
                for f in fillers:
                    f.unlink()
            assert list(problems) == ["store_writable"]
            assert "No space left on device" in problems["store_writable"]
            assert requests.get(url, timeout=10).status_code == 200

            pg._run("pg_ctl", "-D", str(pg.data), "-m", "immediate", "-w", "stop")
            problems = failing(requests.get(url, timeout=10))
            assert list(problems) == ["database"]
            assert "OperationalError" in problems["database"]


@pytest.fixture
def node(tmp_path: Path) -> Iterator[Node]:
    """A node in this process: its listener's thread is reachable only from here."""
    with inprocess_node(tmp_path) as node:
        yield node


def test_not_ready_once_the_dimse_accept_loop_has_ended(node: Node) -> None:
    """The listening socket stays open when the thread of its accept loop ends: the
    check must look at the thread too. The loop is ended by socketserver's own
    shutdown(), which leaves the socket open, as a crash of the thread would."""
    url = f"http://127.0.0.1:{node.config.http.port}/ready"
    assert requests.get(url, timeout=10).status_code == 200
    server = node.scp._server
    socketserver.BaseServer.shutdown(server)  # ends serve_forever(), keeps the socket
    assert server.socket.fileno() >= 0 and accepting(node.config.port)
    problems = failing(requests.get(url, timeout=10))
    assert problems == {"dimse_listener": "the DIMSE listener is not running"}


def test_not_ready_once_the_dimse_listener_is_stopped(node: Node) -> None:
    """The listener stopped through the node's own API (its socket closed): /ready names
    the DIMSE check, and only it."""
    url = f"http://127.0.0.1:{node.config.http.port}/ready"
    assert requests.get(url, timeout=10).status_code == 200
    assert node.scp.listening()
    node.scp.stop(grace=0)
    assert not node.scp.listening() and not accepting(node.config.port)
    problems = failing(requests.get(url, timeout=10))
    assert problems == {"dimse_listener": "the DIMSE listener is not running"}
