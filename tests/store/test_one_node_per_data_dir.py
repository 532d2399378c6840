"""A second ``dicom-node serve`` started on the data directory a node is serving (the
same service started twice, a copy-pasted config) is refused before it touches the
store: it cleared the serving node's incoming/ (the C-STORE it was receiving failed)
and reconciled its store under it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from dicom_node.node import PID_FILENAME
from tests.network import pdus
from tests.store.reconcile_support import reconcile_cli
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.ports import free_port
from tests.support.studies import spooled_data
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def _serve_again(node: NodeProcess, log: Path) -> tuple[int | None, str]:
    """Run ``serve`` with ``node``'s configuration on other ports, so that only the data
    directory is shared; its exit status (None: it started and was stopped) and output."""
    with log.open("wb") as out:
        second = subprocess.Popen(
            [
                *(sys.executable, "-m", "dicom_node", "serve", "--config", str(node.config_path)),
                *("--port", str(free_port()), "--http-port", str(free_port())),
            ],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_until(
            lambda: second.poll() is not None or "dicom-node is running" in log.read_text(),
            timeout=120,
        )
    finally:
        running = second.poll() is None
        if running:
            second.terminate()
            second.wait(60)
    return None if running else second.returncode, log.read_text()


def test_a_second_node_on_the_same_data_dir_is_refused_and_harms_nothing(
    tmp_path: Path,
) -> None:
    node = NodeProcess(tmp_path / "node", {"models": {"bundled": False}}).start()
    try:
        ds = pdus.small_ct()
        data = pdus.dataset_bytes(ds)
        with pdus.connect(node.port) as sock:
            sock.sendall(pdus.associate_rq())
            reader = pdus.read_pdus(sock, timeout=30)
            assert next(reader).kind == pdus.A_ASSOCIATE_AC
            # a C-STORE half received: its spool file is in incoming/
            sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x03, pdus.store_command(ds))))
            sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x00, data[: len(data) // 2])))
            incoming = node.data_dir / "incoming"
            wait_until(lambda: len(spooled_data(incoming)) == 1, timeout=20)
            # the same service started again (on other ports, so that only the data
            # directory is shared)
            code, said = _serve_again(node, tmp_path / "second.log")
            assert code == 1, said
            assert "another dicom-node" in said, said
            assert len(spooled_data(incoming)) == 1  # left as it was
            sock.sendall(pdus.p_data(pdus.pdv(pdus.STORE_CX, 0x02, data[len(data) // 2 :])))
            sock.sendall(pdus.RELEASE_RQ)
            got = list(reader)
        assert pdus.store_statuses(got) == [0], node.log()[-3000:]
        rows = query(node.data_dir, "SELECT count(*) FROM instances")
        assert rows == [(1,)]
    finally:
        assert node.stop() == 0, node.log()[-3000:]


def test_store_reconcile_is_refused_while_a_node_serves_without_its_pid_file(
    tmp_path: Path,
) -> None:
    """``serve`` writes its pid file only once it is up (models loaded, HTTP started);
    until then, or if the file was removed, ``dicom-node store reconcile`` ran under a
    node already receiving (re-indexing its placed, not yet indexed files, removing
    series directories it was creating)."""
    node = NodeProcess(tmp_path / "node", {"models": {"bundled": False}}).start()
    try:
        (node.data_dir / PID_FILENAME).unlink()  # as in the first seconds of a start
        refused = reconcile_cli(node, "--dry-run")
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert "another dicom-node" in refused.stderr, refused.stderr
    finally:
        assert node.stop() == 0, node.log()[-3000:]
