"""The job orchestrator on a real SQLite index and store: how each kind of failure ends.

The model is a stub (the orchestrator's contract with a model is ``applies_to``,
``infer`` and ``provider``); the index, the store, the queue and the delivery attempt to
an unreachable destination are real.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydicom.dataset import Dataset
from pydicom.uid import DeflatedExplicitVRLittleEndian

from ai import types
from ai.registry import ModelRegistry
from dicom_node import synthetic
from dicom_node.db import Database
from dicom_node.index.tables import Instance
from dicom_node.jobs.models import Job, JobState
from dicom_node.jobs.pipeline import JobRunner
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.settings.root import NodeConfig, validate_config
from dicom_node.store.writer import InstanceStore
from tests.support.groups import add_group
from tests.support.hostile_http import HostileHttp, reply, slow_head
from tests.support.index import query
from tests.support.ports import free_port


class StubModel:
    """A model whose behaviour each test picks."""

    provider = "stub"

    def __init__(
        self,
        applies: Callable[[Dataset], tuple[bool, str]] = lambda ds: (True, ""),
        infer: Callable[[Dataset], list] = lambda ds: [],
    ) -> None:
        self._applies, self._infer = applies, infer

    def applies_to(self, ds: Dataset) -> tuple[bool, str]:
        return self._applies(ds)

    def infer(self, ds: Dataset) -> list:
        return self._infer(ds)


def _config(destinations: list[dict] | None = None) -> NodeConfig:
    return validate_config(
        {"destinations": destinations or [], "jobs": {"retry": {"base_s": 1, "max_attempts": 5}}}
    )


def _job(
    index: Database,
    tmp_path: Path,
    *,
    action: str = "infer",
    models: tuple[str, ...] = ("stub",),
    destinations: tuple[str, ...] = (),
) -> int:
    """A queued job over one group of two stored CR images (real DICOM files)."""
    group_id, uids = add_group(index, tmp_path, state="routed")
    for seed, uid in enumerate(uids):  # the placeholder bytes become readable DICOM files
        synthetic.make_cr(seed=seed).save_as(tmp_path / f"{uid}.dcm", enforce_file_format=True)
    job_id = JobQueue(index).enqueue(
        NewJob(
            group_id=group_id,
            rule_name="r",
            action=action,
            study_uid="1.2.3",
            models=models,
            destinations=destinations,
            instance_uids=uids,
        )
    )
    assert job_id is not None
    return job_id


def _run(
    index: Database, tmp_path: Path, models: dict[str, object], config: NodeConfig | None = None
) -> Job:
    """Claim the one queued job, run it once, and return its row."""
    queue = JobQueue(index)
    store = InstanceStore(tmp_path / "store", fsync=False)
    store.open()
    runner = JobRunner(
        index,
        queue,
        store,
        ModelRegistry(models, []),
        lambda: config or _config(),
    )  # type: ignore[arg-type]
    claim = queue.claim("test-worker")
    assert claim is not None
    runner(claim)
    store.close()
    with index.session() as s:
        job = s.get(Job, claim.job_id)
        s.expunge(job)
    return job


def test_unknown_model_is_permanent(index: Database, tmp_path: Path) -> None:
    _job(index, tmp_path, models=("nosuch",))
    job = _run(index, tmp_path, {"stub": StubModel()})
    assert job.state == JobState.DEAD and job.attempts == 1
    assert "model 'nosuch' is not loaded" in job.error


def test_no_fitting_input_is_permanent(index: Database, tmp_path: Path) -> None:
    _job(index, tmp_path)
    job = _run(index, tmp_path, {"stub": StubModel(applies=lambda ds: (False, "not a CT"))})
    assert job.state == JobState.DEAD
    assert "no input image fits model 'stub'" in job.error and "not a CT" in job.error


def test_unconfigured_destination_is_permanent(index: Database, tmp_path: Path) -> None:
    _job(index, tmp_path, action="forward", models=(), destinations=("nowhere",))
    job = _run(index, tmp_path, {})
    assert job.state == JobState.DEAD
    assert job.error == "destination 'nowhere' is not configured"


def test_cancel_mid_run_stops_before_delivery(index: Database, tmp_path: Path) -> None:
    job_id = _job(index, tmp_path, destinations=("pacs",))
    port = free_port()  # nothing listens: a delivery attempt would be recorded as failed

    def infer_then_cancel(ds: Dataset) -> list:
        JobQueue(index).cancel(job_id)  # an admin cancels while the model runs
        return []

    config = _config(
        [{"name": "pacs", "kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": port}]
    )
    job = _run(index, tmp_path, {"stub": StubModel(infer=infer_then_cancel)}, config)
    assert job.state == JobState.CANCELLED and job.error is None
    assert job.written_at is None  # stopped before writing results
    assert query(index.url, "select count(*) from delivery_attempts") == [(0,)]


def test_transient_fault_is_retried(index: Database, tmp_path: Path) -> None:
    def out_of_memory(ds: Dataset) -> list:
        raise RuntimeError("CUDA out of memory")

    _job(index, tmp_path)
    job = _run(index, tmp_path, {"stub": StubModel(infer=out_of_memory)})
    assert job.state == JobState.FAILED and job.next_attempt_at is not None
    assert "CUDA out of memory" in job.error


def test_unreachable_destination_is_transient(index: Database, tmp_path: Path) -> None:
    _job(index, tmp_path, action="forward", models=(), destinations=("pacs",))
    config = _config(
        [
            {
                "name": "pacs",
                "kind": "dimse",
                "ae_title": "PACS",
                "host": "127.0.0.1",
                "port": free_port(),
            }
        ]
    )
    job = _run(index, tmp_path, {}, config)
    assert job.state == JobState.FAILED and job.next_attempt_at is not None
    assert "delivery failed: pacs" in job.error


def test_a_bug_is_recorded_once_not_retried(
    index: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(ds: Dataset) -> tuple[bool, str]:
        return 1 / 0  # type: ignore[return-value]  # a bug in the node's own code path

    _job(index, tmp_path)
    job = _run(index, tmp_path, {"stub": StubModel(applies=broken)})
    assert job.state == JobState.DEAD and job.next_attempt_at is None
    assert job.error.startswith("internal error: ZeroDivisionError")
    assert any(r.exc_info for r in caplog.records if "internal error" in r.getMessage())


def test_results_the_writer_refuses_are_permanent(index: Database, tmp_path: Path) -> None:
    """A result that cannot be a writer's value object (a label with no code) fails once."""
    identity = types.ModelIdentity("stub", "1", "acme", "2.25.1", "test", True)

    def uncoded(ds: Dataset) -> list:
        label = types.LabelResult("finding", None, 0.9, 0.5, True)
        return [types.ImageResult(str(ds.SOPInstanceUID), None, identity, (label,))]

    _job(index, tmp_path)
    job = _run(index, tmp_path, {"stub": StubModel(infer=uncoded)})
    assert job.state == JobState.DEAD and job.attempts == 1 and job.next_attempt_at is None
    assert job.error.startswith("results of model 'stub' cannot be written:"), job.error
    assert "LabelResult.code" in job.error and "\n" not in job.error


def _deflate_input(index: Database, job_id: int, ds: Dataset) -> Path:
    """Store ``ds`` Deflated as the job's first input (as received: never inflated)."""
    with index.session() as s:
        job = s.get(Job, job_id)
        path = Path(s.query(Instance).filter_by(sop_instance_uid=job.instance_uids[0]).one().path)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    ds.save_as(path, enforce_file_format=True)
    return path


def _peak_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0


def test_a_deflate_bomb_input_fails_once_and_is_never_inflated_whole(
    index: Database, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A Deflated input whose Pixel Data inflates to 256 MB while its attributes say
    64 x 64 (about 250 kB stored): the job is dead after one attempt, its error and one
    log line name the job, the study and the instance, and the inflated bytes are never
    held (this process's peak RSS; in a full test run it moves by tens of MB for other
    reasons, hence a bomb far larger than the bound)."""
    job_id = _job(index, tmp_path)
    bomb = synthetic.make_cr(rows=64, cols=64, seed=0)
    bomb.PixelData = bytes(256 * 2**20)
    path = _deflate_input(index, job_id, bomb)
    del bomb
    assert path.stat().st_size < 2**20
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = _peak_rss_kb()
    job = _run(index, tmp_path, {"stub": StubModel()})
    # at most INFLATE_MAX (16 MB) and a step, with room for the run's own noise
    assert _peak_rss_kb() - before < 96 * 1024
    assert job.state == JobState.DEAD and job.attempts == 1 and job.next_attempt_at is None
    assert "more than its image attributes allow" in job.error, job.error
    assert "1.2.3" in job.error and job.instance_uids[0] in job.error and "\n" not in job.error
    failed = [r.getMessage() for r in caplog.records if "failed (dead)" in r.getMessage()]
    assert len(failed) == 1 and f"job {job_id} " in failed[0] and "1.2.3" in failed[0], failed


def test_a_deflated_input_is_read_as_stored(index: Database, tmp_path: Path) -> None:
    """A well-formed Deflated input reaches the model with the pixels it was stored with."""
    job_id = _job(index, tmp_path)
    study = synthetic.make_cr(seed=1).StudyInstanceUID  # the second input's
    source = synthetic.make_cr(rows=300, cols=200, seed=5, study_uid=study)
    _deflate_input(index, job_id, source)
    identity = types.ModelIdentity("stub", "1", "acme", "2.25.1", "test", True)
    code = types.Code("C0", "99TEST", "finding")
    seen: list[Dataset] = []

    def negative(ds: Dataset) -> list:
        seen.append(ds)
        label = types.LabelResult("finding", code, 0.1, 0.5, False)
        return [types.ImageResult(str(ds.SOPInstanceUID), None, identity, (label,))]

    config = validate_config({"results": {"findings_card": False, "heatmaps": "none"}})
    job = _run(index, tmp_path, {"stub": StubModel(infer=negative)}, config)
    assert job.state == JobState.DONE, job.error
    assert len(seen) == 2 and seen[0].SOPInstanceUID == source.SOPInstanceUID
    assert (seen[0].pixel_array == source.pixel_array).all()


# Where each sender reads a destination's answer: the test makes the second reading raise
# an exception the sender does not expect (a bug in the node). No answer a peer can send
# does that any more (the last two, an Orthanc JSON status nested past the recursion
# limit and a STOW-RS Failure Reason of 1e999, are outcomes now: see the tests of
# malformed answers), so the fault is injected: the one mock of this module.
ANSWER_READERS = {
    "orthanc": ("dicom_node.delivery.orthanc._json_status", b'{"Status": "Success"}', 200),
    "stowrs": ("dicom_node.delivery.stowrs.parse_store_response", b"{}", 200),
}


class SenderBug(Exception):
    """What the injected bug raises."""


@pytest.mark.parametrize("kind", ANSWER_READERS)
def test_an_unexpected_error_in_one_destination_is_recorded_and_the_others_delivered(
    kind: str,
    index: Database,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    target, body, status = ANSWER_READERS[kind]
    error_type = SenderBug.__name__
    module_name, _, name = target.rpartition(".")
    module = importlib.import_module(module_name)
    read, calls = getattr(module, name), []

    def first_then_bug(*args, **kwargs):  # odd's second answer raises (destinations go in
        calls.append(1)  # order: odd's two answers are the first two read)
        if len(calls) == 2:
            raise SenderBug("an answer this sender cannot handle")
        return read(*args, **kwargs)

    _job(index, tmp_path, action="forward", models=(), destinations=("odd", "good", "slow"))
    caplog.set_level(logging.DEBUG, logger="dicom_node")
    monkeypatch.setattr(module, name, first_then_bug)
    answer = reply(status, body, {"Content-Type": "application/dicom+json"})
    with (
        HostileHttp(answer) as odd,
        HostileHttp(reply(200, b'{"Status": "Success"}')) as good,
        HostileHttp(slow_head(200, total=40, every=0.1)) as slow,  # 4 s to its 200
    ):
        config = _config(
            [
                {"name": "odd", "kind": kind, "url": odd.url, "timeout": 5},
                {"name": "good", "kind": "orthanc", "url": good.url, "timeout": 5},
                {"name": "slow", "kind": "stowrs", "url": slow.url, "timeout": 0.5},
            ]
        )
        job = _run(index, tmp_path, {}, config)
        slow_sent = slow.sent
    assert len(odd.posts) == 2 and len(good.posts) == 2  # the rest went on
    assert slow_sent < 40  # ended at its timeout, not when the peer finished
    # An unforeseen exception is a bug: retrying would raise it again, so never retried.
    assert job.state == JobState.DEAD and job.next_attempt_at is None, job.error
    assert f"odd: [job {job.id}" in job.error and error_type in job.error, job.error
    attempts = query(
        index.url,
        "select destination, outcome, finished_at is not null, sent, accepted, error"
        " from delivery_attempts order by id",
    )
    assert [a[:5] for a in attempts] == [
        ("odd", "permanent", 1, 2, 1),
        ("good", "delivered", 1, 2, 2),
        ("slow", "transient", 1, 2, 0),
    ]
    assert f"internal error delivering to odd: {error_type}" in attempts[0][5]
    assert "head was not complete after 0.5s" in attempts[2][5]
    responses = query(
        index.url,
        "select r.outcome, r.error from delivery_responses r"
        " join delivery_attempts a on a.id = r.attempt_id where a.destination = 'odd'"
        " order by r.id",
    )
    assert [r[0] for r in responses] == ["delivered", "permanent"]  # each file, on record
    assert error_type in responses[1][1]
    assert any(
        r.levelno == logging.DEBUG and r.exc_info and r.exc_info[0].__name__ == error_type
        for r in caplog.records
    )
