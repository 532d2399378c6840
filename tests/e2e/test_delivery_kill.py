"""kill -9 in the middle of a delivery: every attempt and every accepted instance is on
record, so after a restart at most the instance in flight at the kill is sent again.

Real peers: the node as a subprocess forwards a study to a Storage SCP process that
writes every received object to its own file, so a resend shows up as a second file with
the same SOP Instance UID. The peer is slowed so that the kill lands mid-batch:

- DCMTK storescp ``+uf --sleep-after 1``: it sleeps after answering; the kill finds the
  node between answered instances;
- a pynetdicom SCP process that stores each instance, then sleeps 1 s before answering
  (tests/support/slow_scp.py): the kill finds one instance stored but unanswered, the
  one in flight, and that one, and only it, is sent again;
- Orthanc (REST delivery, and STOW-RS delivery to its DICOMweb plugin) with a Lua
  ``ReceivedInstanceFilter`` that notes each arrival and takes a second before Orthanc
  stores it: a resend is a second arrival.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.errors import InvalidDicomError

from dicom_node.db import sqlite_url
from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.dcmtk import storescu
from tests.support.index import query
from tests.support.node_process import ROOT, NodeProcess
from tests.support.orthanc import Orthanc
from tests.support.slow_scp import SlowStoreSCP
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

pytestmark = pytest.mark.peer

# Instances forwarded, and the kill once the destination has KILL_AT of them: some
# answered before the kill (on record), one in flight, some still to send after the
# restart. Each costs about a second at the slowed peer; 4 and 2 keep all three kinds.
N = 4
KILL_AT = 2


def node_config(index_url: str, destination: dict[str, object]) -> dict[str, object]:
    cfg: dict[str, object] = {
        "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
        "destinations": [{"name": "pacs", "timeout": 20, **destination}],
        "routes": [{"name": "archive", "action": "forward", "destinations": ["pacs"]}],
        "jobs": {"retry": {"base_s": 1, "factor": 1.0, "cap_s": 1, "jitter": 0}},
    }
    if not index_url.startswith("sqlite"):
        cfg["database_url"] = index_url
    return cfg


def received_uids(scp: StoreSCP | SlowStoreSCP) -> Counter[str]:
    """SOP Instance UID -> how many times the destination stored it (a file storescp is
    writing this very moment is read again a little later)."""
    for _ in range(50):
        try:
            return Counter(
                str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in scp.received()
            )
        except (InvalidDicomError, EOFError, OSError):
            time.sleep(0.1)
    raise AssertionError(f"unreadable files in {scp.out_dir}")


def accepted_on_record(node: NodeProcess) -> set[str]:
    rows = query(
        node.index,
        "SELECT r.sop_instance_uid FROM delivery_responses r "
        "JOIN delivery_attempts a ON a.id = r.attempt_id "
        "WHERE r.outcome = 'delivered'",
    )
    return {r[0] for r in rows}


def jobs_show(node: NodeProcess, job_id: int) -> str:
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "dicom_node",
            "jobs",
            "show",
            str(job_id),
            "--config",
            str(node.config_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr
    return out.stdout


@dataclass
class Run:
    """What the destination had and what the node had on record at the kill, and what the
    destination had in the end (SOP Instance UID -> times received)."""

    sent: set[str]
    at_kill: Counter[str]
    on_record: set[str]
    final: Counter[str]

    @property
    def twice(self) -> set[str]:
        return {uid for uid, n in self.final.items() if n > 1}


def kill_mid_delivery_then_restart(
    workdir: Path,
    index_url: str,
    destination: dict[str, object],
    received: Callable[[], Counter[str]],
) -> Run:
    """Forward N instances through a node to the destination, kill -9 the node once the
    destination has KILL_AT of them, restart it and let it finish the job."""
    study = write_files(
        iter_ct_series(N, Patient(patient_id="PK9"), rows=32, cols=32, seed=5, study_uid=new_uid()),
        workdir / "study",
    )
    sent = {str(dcmread(f, stop_before_pixels=True).SOPInstanceUID) for f in study}
    node = NodeProcess(workdir / "node", node_config(index_url, destination))
    node.start()
    try:
        assert storescu(node.port, study).returncode == 0
        wait_until(lambda: sum(received().values()) >= KILL_AT, timeout=60, interval=0.02)
        node.kill()
        at_kill = received()
        on_record = accepted_on_record(node)
        # Everything the destination has is on record, but for the one in flight.
        assert on_record <= set(at_kill), (on_record, at_kill)
        assert len(set(at_kill) - on_record) <= 1, (on_record, at_kill, node.log()[-3000:])
        assert KILL_AT - 1 <= len(on_record) < N
        unfinished = query(node.index, "SELECT id FROM delivery_attempts WHERE finished_at IS NULL")
        assert len(unfinished) == 1, "the attempt under way was not recorded at its start"

        node.start()
        wait_until(
            lambda: query(node.index, "SELECT state FROM jobs") == [("done",)],
            timeout=90,
            interval=0.2,
        )
    finally:
        node.stop()
    run = Run(sent, at_kill, on_record, received())
    assert set(run.final) == sent
    # At most one instance went twice: the one in flight, never one on record as accepted.
    assert len(run.twice) <= 1 and max(run.final.values()) <= 2, run
    assert not run.twice & on_record, run

    attempts = query(node.index, "SELECT outcome, finished_at FROM delivery_attempts ORDER BY id")
    assert [a[0] for a in attempts] == ["interrupted", "delivered"], attempts
    assert attempts[0][1] is None and attempts[1][1] is not None
    shown = jobs_show(node, 1)
    assert "interrupted" in shown and "delivered" in shown, shown
    assert "delivery attempts (2)" in shown, shown
    print(
        f"killed after {sum(at_kill.values())} of {N} received ({len(on_record)} on "
        f"record), resent {len(run.twice)}"
    )
    return run


def peer(kind: str, workdir: Path) -> StoreSCP | SlowStoreSCP:
    if kind == "storescp":  # not bit-preserving: each file is written whole, then answered
        return StoreSCP(
            workdir, ae_title="PACS", bit_preserving=False, extra_args=["+uf", "--sleep-after", "1"]
        )
    return SlowStoreSCP(workdir, ae_title="PACS", delay=1.0)


@pytest.mark.parametrize("kind", ["storescp", "store-then-wait"])
def test_kill_9_mid_dimse_delivery_resends_at_most_one(
    tmp_path: Path, kind: str, index_url: str
) -> None:
    with peer(kind, tmp_path / "pacs") as pacs:
        run = kill_mid_delivery_then_restart(
            tmp_path,
            index_url,
            {"kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": pacs.port},
            lambda: received_uids(pacs),
        )
    if kind == "store-then-wait":  # nothing reaches it after the kill: exactly the one
        assert run.twice == set(run.at_kill) - run.on_record, run


# Orthanc runs this for every instance it receives, before storing it: it notes the
# arrival (a resend is a second line) and takes a second, so the kill lands mid-batch.
SLOW_FILTER = """
function ReceivedInstanceFilter(dicom, origin, info)
  local f = io.open("{receipts}", "a")
  f:write(dicom.SOPInstanceUID .. "\\n")
  f:close()
  os.execute("sleep 1")
  return true
end
"""


@pytest.mark.parametrize("kind", ["orthanc", "stowrs"])
def test_kill_9_mid_http_delivery_resends_at_most_one(tmp_path: Path, kind: str) -> None:
    """Orthanc's REST API, and STOW-RS to its DICOMweb plugin (one instance per request by
    default: a request's answer names its instances all at once)."""
    receipts = tmp_path / "receipts.txt"
    script = tmp_path / "slow.lua"
    script.write_text(SLOW_FILTER.replace("{receipts}", str(receipts)))

    def arrived() -> Counter[str]:
        text = receipts.read_text() if receipts.exists() else ""
        return Counter(line for line in text.splitlines() if line)

    extra = {"LuaScripts": [str(script)]}
    with Orthanc(tmp_path / "orthanc", extra_config=extra, dicomweb=kind == "stowrs") as orthanc:
        url = orthanc.url if kind == "orthanc" else orthanc.dicomweb_url
        run = kill_mid_delivery_then_restart(
            tmp_path, sqlite_url(tmp_path / "unused.sqlite"), {"kind": kind, "url": url}, arrived
        )
        assert orthanc.instance_count() == N
    # The instance in the filter at the kill was stored all the same, and sent once more.
    assert run.twice == set(run.at_kill) - run.on_record, run


def test_retry_sends_only_what_the_destination_refused(tmp_path: Path) -> None:
    """No kill: the peer refuses every second instance once (0xA700, transient); the
    retry sends those and nothing else."""
    study = write_files(
        iter_ct_series(N, Patient(patient_id="PR2"), rows=32, cols=32, seed=6, study_uid=new_uid()),
        tmp_path / "study",
    )
    with SlowStoreSCP(tmp_path / "pacs", delay=0, fail_every=2) as pacs:
        node = NodeProcess(
            tmp_path / "node",
            node_config(
                sqlite_url(tmp_path / "unused.sqlite"),
                {"kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": pacs.port},
            ),
        )
        with node:
            assert storescu(node.port, study).returncode == 0
            wait_until(
                lambda: query(node.index, "SELECT state FROM jobs") == [("done",)],
                timeout=90,
                interval=0.2,
            )
        answers = pacs.answers()
    per_uid: dict[str, list[int]] = {}
    for uid, status in answers:
        per_uid.setdefault(uid, []).append(status)
    refused = {uid for uid, statuses in per_uid.items() if statuses[0] == 0xA700}
    assert len(per_uid) == N and len(refused) == N // 2
    for uid, statuses in per_uid.items():
        assert statuses == ([0xA700, 0x0000] if uid in refused else [0x0000]), (uid, statuses)
    attempts = query(
        node.index, "SELECT outcome, planned, sent, accepted FROM delivery_attempts ORDER BY id"
    )
    assert attempts == [("transient", N, N, N - N // 2), ("delivered", N // 2, N // 2, N // 2)]
