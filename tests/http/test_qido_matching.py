"""QIDO-RS study matching on the index itself, on SQLite and on PostgreSQL: ModalitiesInStudy
(any series of the study, results included; several values match any of them) and StudyDate
ranges (``A-B``, ``-B``, ``A-``, both ends inclusive), paged, whichever plan the query takes.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import insert

from dicom_node.db import Database
from dicom_node.http import qido
from dicom_node.http.results import RESULTS
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder

WHEN = datetime(2026, 1, 1)
BASE = "http://node/dicomweb"
# study -> (date, modality of each received series)
STUDIES = {
    "1.9.1": ("20240101", ["CT"]),
    "1.9.2": ("20240229", ["CT", "MR"]),  # a study of two modalities
    "1.9.3": ("20240301", ["MR"]),
    "1.9.4": ("20241231", ["CR"]),  # its result (SR, SC) is added below
    "1.9.5": ("20250101", ["US"]),
    "1.9.6": (None, ["CT"]),  # no StudyDate: matches no date range
}


@pytest.fixture()
def db(index_url: str) -> Iterator[Database]:
    database = Database(index_url)
    database.create_all()
    recorder = Recorder(database, lambda ae: None)
    for study, (date, modalities) in STUDIES.items():
        for s, modality in enumerate(modalities, 1):
            for i in (1, 2):
                header = InstanceHeader(
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    sop_instance_uid=f"{study}.{s}.{i}",
                    study_uid=study,
                    series_uid=f"{study}.{s}",
                    patient_id="P" + study[-1],
                    study_date=date,
                    modality=modality,
                    instance_number=i,
                )
                receipt = Receipt("NODE", "MOD", None, "1.2.840.10008.1.2.1", "/x", 1, WHEN)
                recorder.record(header, receipt)
    recorder.close()
    with database.engine.begin() as conn:  # the node's results of the CR study
        for n, (modality, sop_class) in enumerate(
            [("SR", "1.2.840.10008.5.1.4.1.1.88.34"), ("SC", "1.2.840.10008.5.1.4.1.1.7")], 1
        ):
            conn.execute(
                insert(RESULTS).values(
                    output_id=n,
                    sop_instance_uid=f"1.9.4.9.{n}",
                    sop_class_uid=sop_class,
                    study_uid="1.9.4",
                    series_uid=f"1.9.4.9{n}",
                    patient_id="P4",
                    study_date="20241231",
                    modality=modality,
                    transfer_syntax="1.2.840.10008.1.2.1",
                    path="/r",
                )
            )
    yield database
    database.dispose()


def studies(db: Database, **params: str) -> list[dict]:
    query = qido.parse("study", list(params.items()), {})
    with db.session() as session:
        return qido.search(session, query, BASE)


def uids(db: Database, **params: str) -> list[str]:
    return [r["0020000D"]["Value"][0] for r in studies(db, **params)]


def test_modalities_in_study_matches_any_series_and_results(db: Database) -> None:
    assert uids(db, ModalitiesInStudy="MR") == ["1.9.2", "1.9.3"]
    assert uids(db, ModalitiesInStudy="CT") == ["1.9.1", "1.9.2", "1.9.6"]
    # The node's results are series of their study: they match, and they are listed.
    assert uids(db, ModalitiesInStudy="SR") == ["1.9.4"]
    assert uids(db, ModalitiesInStudy="SC") == ["1.9.4"]
    [cr] = studies(db, ModalitiesInStudy="CR")
    assert cr["00080061"]["Value"] == ["CR", "SC", "SR"]
    assert cr["00201206"]["Value"] == [3] and cr["00201208"]["Value"] == [4]
    [both] = studies(db, StudyInstanceUID="1.9.2")
    assert both["00080061"]["Value"] == ["CT", "MR"]
    assert uids(db, ModalitiesInStudy="NM") == []


def test_several_modalities_match_any_of_them(db: Database) -> None:
    assert uids(db, ModalitiesInStudy="CR,MR") == ["1.9.2", "1.9.3", "1.9.4"]
    assert uids(db, ModalitiesInStudy="US\\SR") == ["1.9.4", "1.9.5"]
    # with another key, and paged
    assert uids(db, ModalitiesInStudy="CT,MR", PatientID="P2") == ["1.9.2"]
    pages = [uids(db, ModalitiesInStudy="CT,MR", limit="2", offset=o) for o in ("0", "2", "4")]
    assert pages == [["1.9.1", "1.9.2"], ["1.9.3", "1.9.6"], []]


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ("20240229", ["1.9.2"]),
        ("20240229-20240301", ["1.9.2", "1.9.3"]),  # both ends inclusive
        ("20240302-20241230", []),
        ("-20240229", ["1.9.1", "1.9.2"]),
        ("20241231-", ["1.9.4", "1.9.5"]),
        ("19000101-29991231", ["1.9.1", "1.9.2", "1.9.3", "1.9.4", "1.9.5"]),
    ],
)
def test_study_date_ranges(db: Database, dates: str, expected: list[str]) -> None:
    assert uids(db, StudyDate=dates) == expected
    # the same studies page by page, whether the date index or the walk in Study UID
    # order answers (a small page makes the walk the cheaper plan on SQLite)
    paged = [u for o in range(0, 6, 2) for u in uids(db, StudyDate=dates, limit="2", offset=str(o))]
    assert paged == expected


def test_bad_date_range_is_refused(db: Database) -> None:
    with pytest.raises(qido.Problem):
        uids(db, StudyDate="2024-")


def test_both_date_plans_are_exercised_on_sqlite(db: Database) -> None:
    """The paged ranges above take the walk, the whole ones the date index (SQLite)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner chooses by itself")
    with db.session() as session:
        for limit, walks in (("2", True), ("100", False)):
            query = qido.parse("study", [("StudyDate", "20240229-20240301"), ("limit", limit)], {})
            chosen = qido._walk_by_study(session, qido.Instance.__table__, query)
            assert (chosen is not None) == walks, limit
