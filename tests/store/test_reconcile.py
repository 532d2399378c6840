"""Start-up reconciliation: instances acked before a power cut whose index rows were
lost are indexed again and routed; a clean stop does not scan.

A power loss cannot be caused here, so its effect on the index is: the node is killed
(-9) and the last commits are removed from the database directly (the instance rows,
and their share of the open group's counts). That is the only thing faked.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.store.reconcile_support import (
    SUMMARY,
    execute_sql,
    instance_rows,
    lose_last_rows,
    reconcile_cli,
    reconcile_config,
    reconciled_metric,
)
from tests.support.dcmtk import storescu
from tests.support.dicom3tools import HAVE_DCIODVFY, dciodvfy
from tests.support.index import job_rows, query
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.studies import make_study
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer


def _acked_then_lost(tmp_path: Path, index_url: str | None, n: int, lose: int) -> tuple:
    """A node that acked a study of ``n`` instances, was killed, and lost ``lose`` rows."""
    files = make_study(tmp_path / "src", n, size=64, seed=41)
    node = NodeProcess(tmp_path / "node", reconcile_config(index_url, quiet=120))
    node.start()
    try:
        storescu(node.port, files, check=True)  # every instance answered Success
    finally:
        node.kill()
    before = instance_rows(node.index)
    assert len(before) == n
    lost = lose_last_rows(node.index, lose)
    assert len(instance_rows(node.index)) == n - lose
    return node, before, lost


def test_lost_rows_are_indexed_again_and_routed(tmp_path: Path, index_url: str) -> None:
    node, before, lost = _acked_then_lost(tmp_path, index_url, 6, 3)
    with StoreSCP(tmp_path / "pacs", ae_title="PACS") as pacs:
        cfg = reconcile_config(
            index_url,
            quiet=1,
            destinations=[
                {"name": "PACS", "kind": "dimse", "ae_title": "PACS"}
                | {"host": "127.0.0.1", "port": pacs.port}
            ],
            routes=[{"name": "fwd", "action": "forward", "destinations": ["PACS"]}],
        )
        node = NodeProcess(tmp_path / "node", cfg, port=node.port)
        node.start()
        try:
            after = instance_rows(node.index)
            assert sorted(after) == sorted(before)  # each once: the unique key holds too
            for sop, row in before.items():
                got = dict(after[sop])
                # received_at is the file's mtime: the moment it was spooled
                assert abs((got.pop("received_at") - row["received_at"]).total_seconds()) < 5
                assert got == {k: v for k, v in row.items() if k != "received_at"}, sop
            ((count, total),) = query(node.index, "SELECT instance_count, total_bytes FROM groups")
            assert count == 6 and total == sum(r["size"] for r in before.values())
            assert f"{SUMMARY} 6 file(s) seen, 3 re-indexed, 0 unreadable" in node.log()
            assert reconciled_metric(node, "reindexed") == 3
            # The study's group completes and is routed like any received study.
            pacs.wait_for_files(6, timeout=60)
            if not isinstance(node.index, str):
                wait_until(lambda: [r[1] for r in job_rows(node.data_dir)] == ["done"], 30)
        finally:
            assert node.stop() == 0
    assert (node.data_dir / ".clean-shutdown").exists()
    # A clean stop: the next start does not scan.
    node.start()
    try:
        assert node.log().count(SUMMARY) == 1
        assert reconciled_metric(node, "reindexed") == 0
    finally:
        assert node.stop() == 0
    assert len(instance_rows(node.index)) == 6


def test_study_lost_entirely_keeps_its_ae_titles(tmp_path: Path) -> None:
    """A study whose every row (and group) was lost is re-indexed with the AE titles and
    peer address of the association that brought it, read from the origin record the
    node wrote: routed under its called AE's grouping (by series) and matched on its
    calling AE."""
    files = make_study(tmp_path / "src", 3, size=64, seed=43)
    titles = [{"ae_title": "DICOM_NODE"}, {"ae_title": "BYSERIES", "group_by": "series"}]
    node = NodeProcess(
        tmp_path / "node",
        reconcile_config(None, 120, ae_titles=[t | {"quiet_seconds": 120} for t in titles]),
    )
    node.start()
    try:
        storescu(node.port, files, "BYSERIES", "MODX", check=True)
    finally:
        node.kill()
    before = instance_rows(node.index)
    assert {(r["called_ae"], r["calling_ae"]) for r in before.values()} == {("BYSERIES", "MODX")}
    execute_sql(node.index, ("DELETE FROM instances", {}), ("DELETE FROM groups", {}))
    if HAVE_DCIODVFY:  # the File Meta the node wrote is valid
        assert [dciodvfy(Path(r["path"]))[0] for r in before.values()] == [[]] * 3
    with StoreSCP(tmp_path / "pacs", ae_title="PACS") as pacs:
        cfg = reconcile_config(
            None,
            1,
            ae_titles=[t | {"quiet_seconds": 1} for t in titles],
            destinations=[
                {"name": "PACS", "kind": "dimse", "ae_title": "PACS"}
                | {"host": "127.0.0.1", "port": pacs.port}
            ],
            routes=[
                {
                    "name": "from-modx",
                    "match": {"called_ae": "BYSERIES", "calling_ae": "MODX"},
                    "action": "forward",
                    "destinations": ["PACS"],
                }
            ],
        )
        node = NodeProcess(tmp_path / "node", cfg, port=node.port)
        node.start()
        try:
            after = instance_rows(node.index)
            assert sorted(after) == sorted(before)
            for sop, row in before.items():
                got = dict(after[sop])
                assert abs((got.pop("received_at") - row["received_at"]).total_seconds()) < 5
                assert got == {k: v for k, v in row.items() if k != "received_at"}
            groups = query(
                node.index, "SELECT called_ae, calling_ae, group_by, group_key FROM groups"
            )
            series = {r["series_uid"] for r in before.values()}
            assert groups == [("BYSERIES", "MODX", "series", series.pop())]
            pacs.wait_for_files(3, timeout=60)
        finally:
            assert node.stop() == 0


def test_corrupt_unindexed_file_is_left_and_reported(tmp_path: Path) -> None:
    node, _, _ = _acked_then_lost(tmp_path, None, 3, 0)
    bad = node.data_dir / "instances" / "1.2.3" / "1.2.4" / "1.2.5.dcm"
    bad.parent.mkdir(parents=True)
    bad.write_bytes(b"\0" * 128 + b"DICM" + b"garbage" * 20)
    node.start()
    try:
        log = node.log()
        assert f"stored file {bad} not indexed:" in log
        assert f"{SUMMARY} 4 file(s) seen, 0 re-indexed, 1 unreadable" in log
        assert reconciled_metric(node, "unreadable") == 1
        # It serves: a new study is received and indexed.
        more = make_study(tmp_path / "more", 2, size=64, seed=42)
        storescu(node.port, more, check=True)
        assert len(instance_rows(node.index)) == 5
    finally:
        assert node.stop() == 0
    assert bad.exists()


def test_cli_dry_run_lists_then_reconcile_indexes_and_refuses_while_serving(
    tmp_path: Path,
) -> None:
    node, before, lost = _acked_then_lost(tmp_path, None, 4, 2)
    dry = reconcile_cli(node, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    listed = [line for line in dry.stdout.splitlines() if line.startswith("would re-index: ")]
    assert sorted(Path(line.split(": ", 1)[1]) for line in listed) == sorted(
        Path(before[sop]["path"]) for sop in lost
    )
    assert "dry run: 4 file(s) seen, 2 re-indexed" in dry.stdout
    assert len(instance_rows(node.index)) == 2  # nothing written

    done = reconcile_cli(node)
    assert done.returncode == 0, done.stderr
    assert "4 file(s) seen, 2 re-indexed, 0 unreadable" in done.stdout
    assert sorted(instance_rows(node.index)) == sorted(before)

    node.start()
    try:
        wait_until(lambda: "dicom-node is running" in node.log(), timeout=10)
        refused = reconcile_cli(node, "--dry-run")
        assert refused.returncode == 1
        assert f"a node (pid {node.pid}) is serving" in refused.stderr
    finally:
        assert node.stop() == 0
