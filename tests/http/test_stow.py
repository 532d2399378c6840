"""STOW-RS against the running node: dicomweb-client as the client, then bad input by hand.

Each stored part must be exactly where a C-STORE puts it (same path, bytes, index row,
group under the web source's AE title); a bad part fails alone and leaves nothing."""

from __future__ import annotations

import resource
from pathlib import Path

import pydicom
import pytest
import requests
from dicomweb_client.api import DICOMwebClient

from dicom_node.store.writer import InstanceStore
from tests.http.support import RELATED, ct_study, multipart, post, stow_leftovers
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_until

FAILED_SOP_SEQUENCE = "00081198"
REFERENCED_SOP_SEQUENCE = "00081199"
FAILURE_REASON = "00081197"
SOP_INSTANCE = "00081155"


def _uids(body: dict, seq: str) -> list[str | None]:
    return [
        i.get(SOP_INSTANCE, {}).get("Value", [None])[0] for i in body.get(seq, {}).get("Value", [])
    ]


def _reasons(body: dict) -> list[int]:
    return [i[FAILURE_REASON]["Value"][0] for i in body[FAILED_SOP_SEQUENCE]["Value"]]


def _indexed(node: NodeProcess, study: str) -> list[tuple]:
    return query(
        node.data_dir,
        "SELECT sop_instance_uid, called_ae, path, size FROM instances"
        " WHERE study_uid = :s ORDER BY sop_instance_uid",
        s=study,
    )


def test_dicomweb_client_stores_a_study_durably_like_a_c_store(
    node: NodeProcess, tmp_path: Path
) -> None:
    files = ct_study(tmp_path, n=4)
    datasets = [pydicom.dcmread(f) for f in files]
    study = datasets[0].StudyInstanceUID
    client = DICOMwebClient(node.http_url + "/dicomweb")
    response = client.store_instances(datasets)
    stored = sorted(i.ReferencedSOPInstanceUID for i in response.ReferencedSOPSequence)
    assert stored == sorted(d.SOPInstanceUID for d in datasets)
    assert "FailedSOPSequence" not in response
    rows = _indexed(node, study)
    assert [r[0] for r in rows] == stored
    store = InstanceStore(node.data_dir)
    for sop, called, path, size in rows:
        ds = next(d for d in datasets if d.SOPInstanceUID == sop)
        assert called == "WEBSRC"
        assert Path(path) == store.path_for(study, ds.SeriesInstanceUID, sop)
        assert Path(path).stat().st_size == size
        assert pydicom.dcmread(path) == ds
    # The study is assembled under the web source (its quiet period, its AE title).
    group = wait_until(
        lambda: query(
            node.data_dir,
            "SELECT called_ae, instance_count, state "
            "FROM groups WHERE study_uid = :s AND state != 'open'",
            s=study,
        )
    )
    assert group == [("WEBSRC", 4, group[0][2])]
    assert stow_leftovers(node) == []


def test_posted_bytes_are_stored_unchanged_and_a_repeat_is_a_duplicate(
    node: NodeProcess, tmp_path: Path
) -> None:
    files = ct_study(tmp_path, n=2, seed=5)
    study = pydicom.dcmread(files[0]).StudyInstanceUID
    body = multipart([f.read_bytes() for f in files])
    first = post(node, body, f"/dicomweb/studies/{study}")
    assert first.status_code == 200, first.text
    assert first.headers["content-type"] == "application/dicom+json"
    rows = _indexed(node, study)
    assert sorted(Path(r[2]).read_bytes() for r in rows) == sorted(f.read_bytes() for f in files)
    again = post(node, body, f"/dicomweb/studies/{study}")
    assert again.status_code == 200  # keep_first: the stored copy stays, both are referenced
    assert len(_uids(again.json(), REFERENCED_SOP_SEQUENCE)) == 2
    assert _indexed(node, study) == rows


def test_bad_parts_fail_alone_and_good_parts_are_stored(node: NodeProcess, tmp_path: Path) -> None:
    good = ct_study(tmp_path / "a", n=2, seed=11)
    other = ct_study(tmp_path / "b", n=1, seed=12)  # another study
    study = pydicom.dcmread(good[0]).StudyInstanceUID
    other_sop = pydicom.dcmread(other[0]).SOPInstanceUID
    parts = [
        good[0].read_bytes(),
        b"this is not DICOM",
        other[0].read_bytes(),
        good[1].read_bytes(),
        good[1].read_bytes()[:200],
        b"{}",
    ]
    types = ["application/dicom"] * 5 + ["application/json"]
    r = post(node, multipart(parts, types=types), f"/dicomweb/studies/{study}")
    assert r.status_code == 202, r.text
    body = r.json()
    assert sorted(_uids(body, REFERENCED_SOP_SEQUENCE)) == sorted(
        pydicom.dcmread(f).SOPInstanceUID for f in good
    )
    assert _reasons(body) == [0xC000, 0xA900, 0xC000, 0xC122]
    assert _uids(body, FAILED_SOP_SEQUENCE)[1] == other_sop  # the mismatch is named
    assert len(_indexed(node, study)) == 2
    assert query(
        node.data_dir, "SELECT count(*) FROM instances WHERE sop_instance_uid = :s", s=other_sop
    ) == [(0,)]
    assert stow_leftovers(node) == []
    assert "0xA900" in node.log() and "not the URL's" in node.log()


def test_thousands_of_empty_parts_fail_alone_in_one_short_log_line(
    node: NodeProcess, tmp_path: Path
) -> None:
    """2,000 empty parts around two good ones: each fails alone (0xC000), the good ones
    are stored, and the request's log line names the first 20 failures (it named all
    10,000 of a 10,000-part request: a 600 kB line)."""
    good = ct_study(tmp_path, n=2, seed=13)
    study = pydicom.dcmread(good[0]).StudyInstanceUID
    parts = [good[0].read_bytes(), *[b""] * 2000, good[1].read_bytes()]
    r = post(node, multipart(parts), f"/dicomweb/studies/{study}")
    assert r.status_code == 202, r.text[:300]
    assert len(_uids(r.json(), REFERENCED_SOP_SEQUENCE)) == 2
    assert _reasons(r.json()) == [0xC000] * 2000
    assert len(_indexed(node, study)) == 2
    assert stow_leftovers(node) == []
    line = next(line for line in node.log().splitlines() if "2000 of 2002 part(s) failed" in line)
    assert line.endswith("; and 1980 more") and len(line) < 5000, line[:300]


def test_all_parts_failing_answers_409(node: NodeProcess) -> None:
    r = post(node, multipart([b"junk", b"more junk"]))
    assert r.status_code == 409
    assert _reasons(r.json()) == [0xC000, 0xC000]


@pytest.mark.parametrize(
    "name, data, content_type, status",
    [
        ("truncated", multipart([b"x" * 5000])[:-30], RELATED.format("b0undary"), 400),
        ("wrong boundary", multipart([b"x"]), RELATED.format("elsewhere"), 400),
        ("no boundary", multipart([b"x"]), 'multipart/related; type="application/dicom"', 400),
        ("empty", b"--b0undary--\r\n", RELATED.format("b0undary"), 400),
        ("not multipart", b"\0" * 10, "application/dicom", 415),
        (
            "json parts",
            multipart([b"{}"]),
            'multipart/related; type="application/dicom+json"; boundary=b0undary',
            415,
        ),
    ],
)
def test_malformed_requests_store_nothing(
    node: NodeProcess, tmp_path: Path, name: str, data: bytes, content_type: str, status: int
) -> None:
    files = ct_study(tmp_path, n=1, seed=21)
    dicom = files[0].read_bytes()
    sop = pydicom.dcmread(files[0]).SOPInstanceUID
    # A well-formed DICOM part first: a malformed body keeps none of its parts.
    if name in ("truncated", "wrong boundary"):
        data = data.replace(b"x" * (5000 if name == "truncated" else 1), dicom, 1)
    r = post(node, data, content_type=content_type)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    problem = r.json()
    assert problem["status"] == status and problem["title"] and problem["detail"]
    assert query(
        node.data_dir, "SELECT count(*) FROM instances WHERE sop_instance_uid = :s", s=sop
    ) == [(0,)]
    assert stow_leftovers(node) == []


def test_oversize_requests_answer_413_with_or_without_content_length(node: NodeProcess) -> None:
    big = multipart([b"\0" * (2 * 2**20)])  # http.max_request_mb is 1 for this node
    r = post(node, big)
    assert r.status_code == 413 and r.json()["status"] == 413

    def chunks():  # no Content-Length: the limit applies while streaming
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    r = post(node, chunks())
    assert r.status_code == 413
    assert stow_leftovers(node) == []
    assert requests.get(node.http_url + "/health", timeout=10).status_code == 200


def _limit_file_size() -> None:
    # Writes past 450 kB fail with EFBIG (Python ignores SIGXFSZ): a real write failure.
    # (The index's schema alone needs more than 300 kB of WAL while it is created.)
    resource.setrlimit(resource.RLIMIT_FSIZE, (450_000, 450_000))


def test_a_part_that_cannot_be_written_fails_alone_with_a700(tmp_path: Path) -> None:
    small = ct_study(tmp_path / "small", n=2, seed=101)
    big = ct_study(tmp_path / "big", n=1, seed=102, size=512)  # ~525 kB
    cfg = {"models": {"bundled": False}}
    with NodeProcess(tmp_path / "node", cfg, preexec_fn=_limit_file_size) as proc:
        body = multipart([small[0].read_bytes(), big[0].read_bytes(), small[1].read_bytes()])
        r = post(proc, body)
        assert r.status_code == 202, r.text
        assert sorted(_uids(r.json(), REFERENCED_SOP_SEQUENCE)) == sorted(
            pydicom.dcmread(f).SOPInstanceUID for f in small
        )
        assert _reasons(r.json()) == [0xA700]
        assert stow_leftovers(proc) == []
        assert post(proc, multipart([small[0].read_bytes()])).status_code == 200
    assert "File too large" in proc.log()


def test_copies_of_one_instance_in_one_request_keep_one_intact_file(
    node: NodeProcess, tmp_path: Path
) -> None:
    # Parts are stored concurrently: the copies race for the same path and index row.
    [f] = ct_study(tmp_path, n=1, seed=111)
    r = post(node, multipart([f.read_bytes()] * 8))
    assert r.status_code == 200, r.text
    assert len(_uids(r.json(), REFERENCED_SOP_SEQUENCE)) == 8
    [(sop, _, path, size)] = _indexed(node, pydicom.dcmread(f).StudyInstanceUID)
    assert Path(path).read_bytes() == f.read_bytes() and size == f.stat().st_size
    assert stow_leftovers(node) == []
