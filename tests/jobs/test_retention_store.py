"""Retention on a real store and SQLite index, with instances received through the
receive path's Intake (origin records included): what it deletes leaves nothing behind
under ``instances/``, and a receive into the same series at the same moment never loses
an acknowledged instance or its origin record."""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import delete, select, text, update

from dicom_node.db import Database, sqlite_url, utcnow
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.index.tables import Group, Instance
from dicom_node.jobs.retention import BUSY_BEFORE_WAITING, Retention
from dicom_node.settings.jobs import RetentionSettings
from dicom_node.settings.node import AETitleSettings
from dicom_node.store.intake import DUPLICATE, STORED, Arrival, IndexFailed, Intake
from dicom_node.store.origin import (
    Origin,
    instance_record,
    origin_of,
    series_record,
)
from dicom_node.store.reconcile import NO_ORIGIN, REINDEXED, UNREADABLE, read_stored, reconcile
from dicom_node.store.series_lock import placing
from dicom_node.store.writer import InstanceStore
from tests.store.support import MODX, WEB
from tests.support.studies import make_study

RACES = 150  # iterations of the race, bounded in time as well
RACE_SECONDS = 40.0


@dataclass
class Site:
    """A node's store, index and receive path, without the network."""

    store: InstanceStore
    db: Database
    recorder: Recorder
    intake: Intake
    template: pydicom.Dataset
    count: int = 0

    def arrival(self, study: str, series: str, sop: str, origin: Origin) -> Arrival:
        """One instance received from ``origin`` and spooled, ready for the intake."""
        ds = self.template
        ds.StudyInstanceUID, ds.SeriesInstanceUID = study, series
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = sop
        self.count += 1
        spooled = self.store.incoming / f"{sop}.{threading.get_ident()}.part"
        ds.save_as(spooled, enforce_file_format=True)
        header, ts = read_stored(spooled)
        receipt = Receipt(
            origin.called_ae, origin.calling_ae, origin.peer_address, ts, "", 0, utcnow()
        )
        return Arrival(spooled, header, receipt, kind=origin.kind)

    def keep(self, study: str, series: str, sop: str, origin: Origin) -> str:
        """One instance received from ``origin`` as the SCP or STOW-RS stores it; the
        receive path's outcome (or exception)."""
        a = self.arrival(study, series, sop, origin)
        return self.intake.keep(a.spooled, a.header, a.receipt, kind=a.kind)

    def receive(self, study: str, series: str, sop: str, origin: Origin) -> Path:
        """:meth:`keep`, answered Success (asserted); returns the instance's path."""
        assert self.keep(study, series, sop, origin) == STORED
        return self.store.path_for(study, series, sop)

    def age(self, sops: list[str], days: float = 40) -> None:
        """Make ``sops`` received ``days`` ago, their groups routed (retention's to take)."""
        when = utcnow() - dt.timedelta(days=days)
        with self.db.session() as s:
            s.execute(
                update(Instance).where(Instance.sop_instance_uid.in_(sops)).values(received_at=when)
            )
            groups = select(Instance.group_id).where(Instance.sop_instance_uid.in_(sops))
            s.execute(update(Group).where(Group.id.in_(groups)).values(state="routed"))

    def indexed(self) -> dict[str, tuple[str, str, str]]:
        """SOP Instance UID -> (path, called AE, calling AE) of every row."""
        with self.db.session() as s:
            rows = s.execute(
                select(Instance.sop_instance_uid, Instance.path).add_columns(
                    Instance.called_ae, Instance.calling_ae
                )
            ).all()
        return {r[0]: (r[1], r[2], r[3]) for r in rows}


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    store = InstanceStore(tmp_path / "data")
    store.open()
    db = Database(sqlite_url(tmp_path / "index.db"))
    db.create_all()
    recorder = Recorder(db, lambda title: AETitleSettings(ae_title=title, group_by="series"))
    template = pydicom.dcmread(make_study(tmp_path / "src", 1, size=16, seed=3)[0])
    yield Site(store, db, recorder, Intake(store, recorder, "keep_first"), template)
    recorder.close()
    db.dispose()
    store.close()


def _retention(site: Site, busy_wait: float = 60.0) -> Retention:
    return Retention(
        site.db,
        lambda: RetentionSettings(instances_days=30),
        store=site.store,
        busy_wait=busy_wait,
    )


def test_retention_of_a_whole_study_leaves_nothing_of_it_under_instances(site: Site) -> None:
    """A study of two series (one instance from another origin, with a record of its
    own) goes whole: files, origin records, series and study directories. A series of
    another study that is still young stays, and so does the other series of a study
    only one series of which is old."""
    old = [site.receive("1.5", "1.5.1", f"1.5.1.{i}", MODX) for i in range(3)]
    old.append(site.receive("1.5", "1.5.1", "1.5.1.9", WEB))
    old += [site.receive("1.5", "1.5.2", f"1.5.2.{i}", WEB) for i in range(2)]
    assert instance_record(old[3]).exists()
    half_old = site.receive("1.6", "1.6.1", "1.6.1.1", MODX)
    half_young = site.receive("1.6", "1.6.2", "1.6.2.1", MODX)
    young = site.receive("1.7", "1.7.1", "1.7.1.1", WEB)
    site.age([p.stem for p in old] + [half_old.stem])

    report = _retention(site).run_once()

    assert report.instances == len(old) + 1
    instances = site.store.instances
    assert not (instances / "1.5").exists()
    assert not half_old.parent.exists()
    assert sorted(p.relative_to(instances).as_posix() for p in instances.rglob("*")) == [
        "1.6",
        "1.6/1.6.2",
        "1.6/1.6.2/1.6.2.1.dcm",
        "1.6/1.6.2/origin.json",
        "1.7",
        "1.7/1.7.1",
        "1.7/1.7.1/1.7.1.1.dcm",
        "1.7/1.7.1/origin.json",
    ]
    assert set(site.indexed()) == {half_young.stem, young.stem}
    assert origin_of(half_young) == MODX and origin_of(young) == WEB


def test_an_instance_record_goes_with_its_instance_and_the_series_record_stays(
    site: Site,
) -> None:
    """An old instance from another origin than its series' owner goes with its own
    record; the owner's young instance and the series record stay."""
    owner = site.receive("1.8", "1.8.1", "1.8.1.1", MODX)
    other = site.receive("1.8", "1.8.1", "1.8.1.2", WEB)
    assert instance_record(other).exists()
    site.age([other.stem])

    assert _retention(site).run_once().instances == 1

    assert not other.exists() and not instance_record(other).exists()
    assert sorted(p.name for p in owner.parent.iterdir()) == ["1.8.1.1.dcm", "origin.json"]
    assert origin_of(owner) == MODX


def _clean(retention: Retention, start: threading.Barrier, failures: list) -> None:
    """One retention pass, starting with the receive it races."""
    try:
        start.wait()
        retention.run_once()
    except BaseException as err:  # noqa: BLE001  (reported by the test)
        failures.append(err)


def test_a_receive_racing_retention_on_its_series_loses_nothing(site: Site) -> None:
    """Retention removes a series' last (old) instance, and with it the series' origin
    record and directories, while a new instance of that very series is received from
    the same or another origin. Every acknowledged instance stays, indexed, with its
    origin; once every row is lost, reconciliation finds each with its origin record
    and nothing without one."""
    retention = _retention(site)
    acked: dict[str, tuple[Path, Origin]] = {}
    rng = random.Random(12)
    deadline = time.monotonic() + RACE_SECONDS
    rounds = recreated = 0  # recreated: the series' owner is the new instance's
    while rounds < RACES and time.monotonic() < deadline:
        study, series = f"2.{rounds}", f"2.{rounds}.1"
        site.receive(study, series, f"{series}.1", MODX)
        site.age([f"{series}.1"])
        origin = MODX if rounds % 2 else WEB
        sop = f"{series}.2"
        start = threading.Barrier(2)
        failures: list[BaseException] = []
        cleaner = threading.Thread(target=_clean, args=(retention, start, failures))
        cleaner.start()
        start.wait()
        time.sleep(rng.random() * 0.003)  # land anywhere in retention's pass
        path = site.receive(study, series, sop, origin)
        acked[sop] = (path, origin)
        cleaner.join()
        assert not failures, failures
        assert path.exists(), f"round {rounds}: acknowledged {sop} lost"
        assert origin_of(path) == origin, f"round {rounds}: wrong origin of {sop}"
        recreated += Origin.decode(series_record(path.parent).read_bytes()) != MODX
        rounds += 1
    assert rounds >= 20
    assert recreated, "retention never removed a series before the receive re-created it"
    retention.run_once()  # what a busy series kept back goes now

    indexed = site.indexed()
    assert set(indexed) == set(acked)
    for sop, (path, origin) in acked.items():
        assert indexed[sop] == (str(path), origin.called_ae, origin.calling_ae)
        assert series_record(path.parent).exists()
    stored = sorted(p.name for p in site.store.instances.rglob("*.dcm"))
    assert stored == sorted(f"{sop}.dcm" for sop in acked)

    with site.db.session() as s:  # a power loss takes every row
        s.execute(delete(Instance))
        s.execute(delete(Group))
    report = reconcile(site.store, site.db, site.recorder)
    assert (report.count(NO_ORIGIN), report.count(UNREADABLE)) == (0, 0)
    assert report.count(REINDEXED) == len(acked) == report.seen
    again = site.indexed()
    assert {sop: (o.called_ae, o.calling_ae) for sop, (_, o) in acked.items()} == {
        sop: row[1:] for sop, row in again.items()
    }


def test_a_batch_racing_retention_on_its_series_loses_nothing(site: Site) -> None:
    """A STOW-RS request's batch (:meth:`Intake.keep_all`) holds its series from the
    duplicate check until its one index transaction committed, while retention deletes
    the series' last (old) instance: every instance of the batch stays, indexed, with
    its origin; retention deletes the old one in that pass or (busy) in the next."""
    retention = _retention(site)
    acked: dict[str, Path] = {}
    rng = random.Random(14)
    deadline = time.monotonic() + RACE_SECONDS
    rounds = recreated = busy = 0
    while rounds < RACES // 5 and time.monotonic() < deadline:
        study, series = f"6.{rounds}", f"6.{rounds}.1"
        site.receive(study, series, f"{series}.1", MODX)
        site.age([f"{series}.1"])
        arrivals = [site.arrival(study, series, f"{series}.{i}", WEB) for i in range(2, 22)]
        start = threading.Barrier(2)
        failures: list[BaseException] = []
        cleaner = threading.Thread(target=_clean, args=(retention, start, failures))
        cleaner.start()
        start.wait()
        time.sleep(rng.random() * 0.03)  # land anywhere in retention's pass
        outcomes = site.intake.keep_all(arrivals)
        cleaner.join()
        assert not failures, failures
        assert outcomes == [STORED] * len(arrivals), f"round {rounds}: {outcomes}"
        for a in arrivals:
            path = site.store.path_for(study, series, a.header.sop_instance_uid)
            assert path.exists(), f"round {rounds}: acknowledged {path.name} lost"
            assert origin_of(path) == WEB, f"round {rounds}: wrong origin of {path.name}"
            acked[a.header.sop_instance_uid] = path
        owner = Origin.decode(series_record(Path(path).parent).read_bytes())
        recreated += owner != MODX
        busy += Path(path).with_name(f"{series}.1.dcm").exists()
        rounds += 1
    assert rounds >= 10
    assert recreated, f"retention never removed a series before the batch ({busy} busy)"
    retention.run_once()  # what a busy series kept back goes now
    assert set(site.indexed()) == set(acked), f"{busy} series left busy, not cleaned"
    stored = sorted(p.name for p in site.store.instances.rglob("*.dcm"))
    assert stored == sorted(p.name for p in acked.values())
    assert not [p for p in site.store.incoming.iterdir() if p.suffix == ".part"]


# What the receive path leaves under instances/ when it keeps nothing: retention only
# visits series that have rows, so an empty series directory would stay for ever.


def _tree(site: Site) -> list[str]:
    instances = site.store.instances
    return sorted(p.relative_to(instances).as_posix() for p in instances.rglob("*"))


def test_a_duplicate_under_other_study_and_series_uids_leaves_no_directory(site: Site) -> None:
    """keep_first: a second copy of an instance that names another study and series is
    answered as a duplicate, and nothing of it stays under ``instances/``."""
    site.receive("3.1", "3.1.1", "3.1.1.1", MODX)
    before = _tree(site)
    assert site.keep("3.2", "3.2.1", "3.1.1.1", MODX) == DUPLICATE
    assert _tree(site) == before


def test_a_duplicate_into_a_series_that_holds_others_leaves_it_whole(site: Site) -> None:
    """The stored copy's series is not the duplicate's, but another instance is in the
    duplicate's series: that series stays as it was."""
    site.receive("3.3", "3.3.1", "3.3.1.1", MODX)
    site.receive("3.4", "3.4.1", "3.4.1.1", WEB)
    before = _tree(site)
    assert site.keep("3.4", "3.4.1", "3.3.1.1", MODX) == DUPLICATE
    assert _tree(site) == before


def test_an_instance_the_index_refuses_leaves_no_directory(site: Site) -> None:
    """The index fails on the row (a real SQLite error: a trigger naming a table that is
    gone): the C-STORE fails, and neither the placed file nor its origin records nor the
    directories stay."""
    site.receive("3.5", "3.5.1", "3.5.1.1", MODX)
    before = _tree(site)
    with site.db.session() as s:
        s.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON instances "
                "BEGIN INSERT INTO gone VALUES (1); END"
            )
        )
    with pytest.raises(IndexFailed):
        site.keep("3.6", "3.6.1", "3.6.1.1", MODX)
    assert _tree(site) == before
    # a new series in the study of a stored one: only the new series goes
    with pytest.raises(IndexFailed):
        site.keep("3.5", "3.5.2", "3.5.2.1", WEB)
    assert _tree(site) == before


# A series that is being received on every pass (a long-running modality).


class _Waiting(logging.Handler):
    """Sets ``event`` when retention says it waits for a series' receivers."""

    def __init__(self) -> None:
        super().__init__()
        self.event = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        if "waiting up to" in record.getMessage():
            self.event.set()


def _busy_count(outcome: str) -> float:
    labels = {"outcome": outcome}
    return REGISTRY.get_sample_value("dicom_node_retention_series_busy_total", labels) or 0.0


def test_a_series_received_on_every_pass_is_cleaned_after_waiting_for_it(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """Each pass finds the series held by a receiver: it is skipped (a log line naming
    study and series, a metric) and retried on the next pass. Passes a minute apart do
    not wait for it until it has been skipped for BUSY_BEFORE_WAITING; then a pass waits
    for the receivers, a bounded time: the receiver that never lets go is given up on,
    the one that does is waited for, and the old instance goes while the young one stays."""
    old = site.receive("4.1", "4.1.1", "4.1.1.1", MODX)
    young = site.receive("4.1", "4.1.1", "4.1.1.2", MODX)
    site.age([old.stem])
    series = old.parent
    retention = _retention(site, busy_wait=0.2)
    skipped, waited = _busy_count("skipped"), _busy_count("waited")
    caplog.set_level(logging.INFO, logger="dicom_node.jobs.retention")
    t0 = utcnow()
    passes = int(BUSY_BEFORE_WAITING / dt.timedelta(minutes=1)) + 1  # the last one waits
    with placing(site.store, series):  # a receiver that never lets go
        for n in range(1, passes + 1):
            caplog.clear()
            report = retention.run_once(t0 + dt.timedelta(minutes=n - 1))
            assert (report.instances, report.series_busy) == (0, 1)
            assert old.exists()
            line = f"series 4.1.1 of study 4.1 is being received: left for the next pass ({n}"
            assert line in caplog.text
            assert ("waiting up to" in caplog.text) == (n == passes), n
    assert _busy_count("skipped") == skipped + passes
    assert set(site.indexed()) == {old.stem, young.stem}

    retention.busy_wait = 60.0
    waiting = _Waiting()
    logging.getLogger("dicom_node.jobs.retention").addHandler(waiting)
    held = threading.Event()

    def receive() -> None:  # holds the series until retention waits for it
        with placing(site.store, series):
            held.set()
            waiting.event.wait(60)

    receiver = threading.Thread(target=receive)
    receiver.start()
    try:
        assert held.wait(60)
        report = retention.run_once(t0 + dt.timedelta(minutes=passes))
    finally:
        waiting.event.set()
        receiver.join()
        logging.getLogger("dicom_node.jobs.retention").removeHandler(waiting)
    assert (report.instances, report.series_busy) == (1, 0)
    assert not old.exists() and young.exists() and origin_of(young) == MODX
    assert set(site.indexed()) == {young.stem}
    assert _busy_count("waited") == waited + 1


def test_at_a_daily_interval_the_next_pass_waits_for_a_busy_series(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    """How soon a busy series is waited for is a time, not a number of passes: at a daily
    interval the pass of the next day waits (three passes in a row were three days)."""
    old = site.receive("4.2", "4.2.1", "4.2.1.1", MODX)
    site.age([old.stem])
    retention = _retention(site, busy_wait=0.2)
    caplog.set_level(logging.INFO, logger="dicom_node.jobs.retention")
    t0 = utcnow()
    with placing(site.store, old.parent):
        assert retention.run_once(t0).series_busy == 1
        assert "waiting up to" not in caplog.text
        caplog.clear()
        assert retention.run_once(t0 + dt.timedelta(days=1)).series_busy == 1
        assert "after waiting 0.2 s" in caplog.text
        assert "series 4.2.1 of study 4.2 skipped 1 passes in a row since" in caplog.text
    assert retention.run_once(t0 + dt.timedelta(days=2)).instances == 1
    assert not old.exists()
