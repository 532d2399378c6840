"""QIDO-RS study matching on the index itself, on SQLite and on PostgreSQL: ModalitiesInStudy
(any series of the study, results included; several values match any of them), StudyDate
and StudyTime ranges (``A-B``, ``-B``, ``A-``, both ends inclusive), paged, whichever plan
the query takes; malformed values and parameters refused with a 400 naming them.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime

import pytest
from sqlalchemy import insert

from dicom_node.db import Database
from dicom_node.http import qido, qido_query
from dicom_node.http.problem import Problem
from dicom_node.http.results import RESULTS
from dicom_node.index.header import InstanceHeader
from dicom_node.index.recorder import Receipt, Recorder
from dicom_node.index.tables import Instance

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
# study -> StudyTime (partial and fractional values as DICOM allows them)
TIMES = {
    "1.9.1": "080000",
    "1.9.2": "083000.5",
    "1.9.3": "120000",
    "1.9.4": "1215",
    "1.9.5": "235960",  # a leap second
    "1.9.6": None,
}
# series -> SeriesDate, SeriesTime, PerformedProcedureStepStartDate/Time (others none)
SERIES_DATES = {
    "1.9.1.1": ("20240101", "080500", "20240101", "0800"),
    "1.9.2.1": ("20240229", "083000.5", None, None),
    "1.9.2.2": ("20240301", "1200", "20240301", "115959"),  # a day after its study
}
# study -> PatientName
NAMES = {"1.9.1": "Doe^John", "1.9.2": "DOE", "1.9.3": "Doe^Jane", "1.9.5": "Doerr^Ann"}


@pytest.fixture()
def db(index_url: str) -> Iterator[Database]:
    database = Database(index_url)
    database.create_all()
    recorder = Recorder(database, lambda ae: None)
    for study, (date, modalities) in STUDIES.items():
        for s, modality in enumerate(modalities, 1):
            for i in (1, 2):
                dated = SERIES_DATES.get(f"{study}.{s}", (None,) * 4)
                header = InstanceHeader(
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.2",
                    sop_instance_uid=f"{study}.{s}.{i}",
                    study_uid=study,
                    series_uid=f"{study}.{s}",
                    patient_id="P" + study[-1],
                    patient_name=NAMES.get(study),
                    study_date=date,
                    study_time=TIMES[study],
                    modality=modality,
                    instance_number=i,
                    series_date=dated[0],
                    series_time=dated[1],
                    pps_start_date=dated[2],
                    pps_start_time=dated[3],
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


def studies(db: Database, level: str = "study", **params: str) -> list[dict]:
    query = qido_query.parse(level, list(params.items()), {})
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


def test_wildcard_matching_is_case_sensitive_but_for_person_names(db: Database) -> None:
    """PS3.4 C.2.2.2: matching is case-sensitive; only PN may ignore case. SQLite's LIKE
    ignores ASCII case, so ``p*`` matched every PatientID there (not on PostgreSQL)."""
    assert uids(db, PatientID="p*") == []
    assert uids(db, PatientID="P?") == list(STUDIES)
    assert uids(db, PatientName="doe*") == ["1.9.1", "1.9.2", "1.9.3", "1.9.5"]


def test_several_modalities_match_any_of_them(db: Database) -> None:
    assert uids(db, ModalitiesInStudy="CR,MR") == ["1.9.2", "1.9.3", "1.9.4"]
    assert uids(db, ModalitiesInStudy="US\\SR") == ["1.9.4", "1.9.5"]
    # with another key, and paged
    assert uids(db, ModalitiesInStudy="CT,MR", PatientID="P2") == ["1.9.2"]
    pages = [uids(db, ModalitiesInStudy="CT,MR", limit="2", offset=o) for o in ("0", "2", "4")]
    assert pages == [["1.9.1", "1.9.2"], ["1.9.3", "1.9.6"], []]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        # PS3.4 C.2.2.2.1: without a wildcard, single value matching: the whole value,
        # case-insensitively for PN (which C.2.2.2.1 allows); a bare family name does
        # not match a name with more components.
        ("Doe", ["1.9.2"]),
        ("doe^john", ["1.9.1"]),
        ("Doe^Jo", []),
        ("Doe*", ["1.9.1", "1.9.2", "1.9.3", "1.9.5"]),
        ("Doe^*", ["1.9.1", "1.9.3"]),
        ("doe^j?n*", ["1.9.3"]),
    ],
)
def test_patient_name_matching(db: Database, name: str, expected: list[str]) -> None:
    assert uids(db, PatientName=name) == expected


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
    with pytest.raises(Problem):
        uids(db, StudyDate="2024-")


def test_both_date_plans_are_exercised_on_sqlite(db: Database) -> None:
    """The paged ranges above take the walk, the whole ones the date index (SQLite)."""
    if db.engine.dialect.name != "sqlite":
        pytest.skip("PostgreSQL's planner chooses by itself")
    with db.session() as session:
        for limit, walks in (("2", True), ("100", False)):
            query = qido_query.parse(
                "study", [("StudyDate", "20240229-20240301"), ("limit", limit)], {}
            )
            chosen = qido._walk_by_study(session, Instance.__table__, query)
            assert (chosen is not None) == walks, limit


# StudyTime -> the studies it matches
TIME_QUERIES = {
    "120000": ["1.9.3"],
    "080000-120000": ["1.9.1", "1.9.2", "1.9.3"],  # both ends inclusive
    "08-11": ["1.9.1", "1.9.2"],  # an end covers all of its last unit
    "-0830": ["1.9.1", "1.9.2"],  # 083000.5 is within 0830
    "12-": ["1.9.3", "1.9.4", "1.9.5"],
    "1216-2359": ["1.9.5"],
    "000000-075959.999999": [],
    "12-12": ["1.9.3", "1.9.4"],
}


def test_study_time_ranges(db: Database) -> None:
    """Every shape in one database (each setup of it costs most of a second)."""
    for times, expected in TIME_QUERIES.items():
        assert uids(db, StudyTime=times) == expected, times
        in_2024 = [u for u in expected if u in ("1.9.1", "1.9.2", "1.9.3", "1.9.4")]
        assert uids(db, StudyTime=times, StudyDate="20240101-20241231") == in_2024, times
        paged = [uids(db, StudyTime=times, limit="1", offset=str(o)) for o in range(4)]
        assert [u for page in paged for u in page] == expected, times


SERIES_DATE_TAGS = ("00080021", "00080031", "00400244", "00400245")


def series_uids(db: Database, **params: str) -> list[str]:
    return [r["0020000E"]["Value"][0] for r in studies(db, "series", **params)]


def test_series_dates_and_times_are_returned_only_where_the_series_has_them(
    db: Database,
) -> None:
    """Series results carry SeriesDate/Time and PerformedProcedureStepStartDate/Time
    when the series has them, and no element at all when it has none; instance results
    carry them when asked by includefield."""
    found = {r["0020000E"]["Value"][0]: r for r in studies(db, "series", limit="1000")}
    assert len(found) == 9  # the results of 1.9.4 are two series of their own
    for uid, series in found.items():
        values = SERIES_DATES.get(uid, (None,) * 4)
        expected = {
            tag: {"vr": vr, "Value": [v]}
            for tag, vr, v in zip(SERIES_DATE_TAGS, ("DA", "TM", "DA", "TM"), values, strict=True)
            if v is not None
        }
        assert {t: series[t] for t in SERIES_DATE_TAGS if t in series} == expected, uid
    include = {"includefield": "SeriesDate,SeriesTime,PerformedProcedureStepStartDate"}
    instances = studies(db, "instance", SeriesInstanceUID="1.9.2.2", **include)
    assert [(i["00080021"], i["00080031"], i["00400244"]) for i in instances] == [
        (
            {"vr": "DA", "Value": ["20240301"]},
            {"vr": "TM", "Value": ["1200"]},
            {"vr": "DA", "Value": ["20240301"]},
        )
    ] * 2
    assert all("00400245" not in i for i in instances)  # not asked for
    plain = studies(db, "instance", SeriesInstanceUID="1.9.2.2")
    assert [t for i in plain for t in SERIES_DATE_TAGS if t in i] == []
    for instance in studies(db, "instance", SeriesInstanceUID="1.9.3.1", includefield="all"):
        assert not set(SERIES_DATE_TAGS) & set(instance)  # none invented


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        ("20240229", ["1.9.2.1"]),
        ("20240229-20240301", ["1.9.2.1", "1.9.2.2"]),  # both ends inclusive
        ("-20240229", ["1.9.1.1", "1.9.2.1"]),
        ("20240301-", ["1.9.2.2"]),
        ("20240302-", []),
    ],
)
def test_series_date_ranges(db: Database, dates: str, expected: list[str]) -> None:
    """SeriesDate matches as StudyDate does: a series without one matches no range."""
    assert series_uids(db, SeriesDate=dates) == expected
    paged = [series_uids(db, SeriesDate=dates, limit="1", offset=str(o)) for o in range(3)]
    assert [u for page in paged for u in page] == expected
    instances = studies(db, "instance", SeriesDate=dates)
    assert sorted({i["0020000E"]["Value"][0] for i in instances}) == expected
    # A matching key is returned, at the instance level too.
    for instance in instances:
        series = instance["0020000E"]["Value"][0]
        assert instance["00080021"] == {"vr": "DA", "Value": [SERIES_DATES[series][0]]}


def test_series_time_and_date_together(db: Database) -> None:
    assert series_uids(db, SeriesTime="08-0830") == ["1.9.1.1", "1.9.2.1"]
    assert series_uids(db, SeriesTime="08-0830", SeriesDate="20240201-") == ["1.9.2.1"]
    assert series_uids(db, StudyDate="20240229", SeriesDate="20240301") == ["1.9.2.2"]
    assert series_uids(db, PerformedProcedureStepStartDate="20240101") == ["1.9.1.1"]
    # Not a study-level key: ignored, with a warning.
    query = qido_query.parse("study", [("SeriesDate", "20240301")], {})
    assert query.filters == [] and "SeriesDate is not a supported" in query.warnings[0]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("SeriesDate", "20240230"),
        ("SeriesDate", "20240301-20240101"),
        ("SeriesTime", "2561"),
        ("StudyTime", "25"),  # no hour 25
        ("StudyTime", "2561"),  # no minute 61
        ("StudyTime", "126000"),  # no minute 60
        ("StudyTime", "120061"),  # seconds stop at 60 (a leap second)
        ("StudyTime", "1"),
        ("StudyTime", "12:00"),
        ("StudyTime", "1200.5"),  # a fraction only after the seconds
        ("StudyTime", "120000.1234567"),
        ("StudyTime", "120000-080000"),  # ends before it starts (C.2.2.2.5.2)
        ("StudyTime", "-"),
        ("StudyDate", "2024-13-45"),
        ("StudyDate", "abc"),
        ("StudyDate", "20240230"),
        ("StudyDate", "20240101-20230101"),  # ends before it starts (C.2.2.2.5.1)
        ("StudyDate", "20240101-20240201-20240301"),
        ("StudyDate", "\u0662\u0660\u0662\u0664\u0660\u0661\u0660\u0661"),  # not ASCII digits
        ("PatientBirthDate", "19991332"),
        ("Rows", "12a"),
        ("Rows", "99999999999"),
        ("limit", "-1"),
        ("limit", "abc"),
        ("limit", "\u00b2"),  # a digit to str.isdigit, not to int()
        ("offset", "1e3"),
        ("fuzzymatching", "yes"),
        ("NoSuchKeyword", "1"),
        ("includefield", "NoSuchKeyword"),
    ],
)
def test_malformed_values_are_a_400_naming_parameter_and_value(key: str, value: str) -> None:
    with pytest.raises(Problem) as raised:
        qido_query.parse("instance", [(key, value)], {})
    problem = raised.value
    assert problem.status == 400
    assert problem.extra == {"parameter": key, "value": value}
    assert key in problem.detail and repr(value) in problem.detail


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("StudyTime", "235960.999999"),
        ("StudyTime", "12-12"),
        ("StudyTime", "1130-12"),
        ("StudyDate", "20240101-20240101"),
        ("StudyDate", "20240229"),
        ("Rows", "+0000000000512"),
        ("limit", "9" * 5000),  # beyond every cap: capped, not an error
        ("offset", "0"),
        ("fuzzymatching", "false"),
    ],
)
def test_well_formed_edge_values_are_accepted(key: str, value: str) -> None:
    query = qido_query.parse("instance", [(key, value)], {})
    assert query.limit <= qido_query.MAX_LIMIT and query.warnings == []


def test_ignored_keys_and_fuzzy_matching_give_one_warning_each() -> None:
    query = qido_query.parse(
        "study",
        [("fuzzymatching", "true"), ("Rows", "512"), ("00280010", "512"), ("PatientID", "P1")],
        {},
    )
    assert [a.keyword for a, _ in query.filters] == ["PatientID"]
    assert query.warnings == [
        '299 dicom-node "The fuzzymatching parameter is not supported. '
        'Only literal matching has been performed."',
        '299 dicom-node "Rows is not a supported matching key at the study level: '
        'it has been ignored."',
    ]
