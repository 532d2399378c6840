"""STOW-RS and Orthanc REST delivery against an HTTP destination that misbehaves on
purpose (tests/support/hostile_http.py: a real loopback server): an endless slow body, a
huge body, redirects, malformed or oddly typed STOW-RS answers. Each attempt ends within
the destination's timeout, reads a bounded answer, sends each file once and never raises.
"""

from __future__ import annotations

import gc
import json
from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node.delivery import deliver
from dicom_node.settings.destinations import DestinationAdapter
from tests.support.hostile_http import HostileHttp, flood, reply, slow_head, trickle

KINDS = ["stowrs", "orthanc"]
DICOM_JSON = {"Content-Type": "application/dicom+json"}


def dest(kind: str, url: str, timeout: float = 5):
    return DestinationAdapter.validate_python(
        {"name": "hostile", "kind": kind, "url": url, "timeout": timeout}
    )


def uid_of(path: Path) -> str:
    return str(dcmread(path, stop_before_pixels=True).SOPInstanceUID)


@pytest.mark.parametrize("kind", KINDS)
def test_an_endless_slow_body_ends_the_attempt_at_the_timeout(kind: str, files) -> None:
    # 400 bytes announced, one every 50 ms: 20 s to read it all; the timeout is 0.5 s.
    with HostileHttp(trickle(200, total=400, every=0.05)) as peer:
        report = deliver(dest(kind, peer.url, timeout=0.5), files["ct"])
        sent = peer.sent
    assert report.status == "transient" and report.error_kind == "timeout", report.summary()
    assert "not complete after 0.5s" in (report.error or "")
    assert [o.outcome for o in report.outcomes] == ["transient", "transient"]
    assert len(peer.posts) == 1  # the second file waits for the next attempt
    assert sent < 400  # the node hung up; it did not wait for the whole body


@pytest.mark.parametrize("kind", KINDS)
def test_a_head_that_never_completes_ends_the_attempt_at_the_timeout(kind: str, files) -> None:
    """A byte of the status line and headers every 0.1 s keeps each socket read within
    the 0.5 s timeout; the whole exchange must still end at the timeout."""
    total = 40  # head bytes: 4 s to send them all, then a 200 the node must not wait for
    with HostileHttp(slow_head(200, total=total, every=0.1)) as peer:
        report = deliver(dest(kind, peer.url, timeout=0.5), files["ct"])
        sent = peer.sent
    assert report.status == "transient" and report.error_kind == "timeout", report.summary()
    assert f"at {peer.url}" in (report.error or "")
    assert "head was not complete after 0.5s" in (report.error or "")
    assert [o.outcome for o in report.outcomes] == ["transient", "transient"]
    assert len(peer.posts) == 1  # the second file waits for the next attempt
    assert sent < total  # the node hung up before the peer finished its head


@pytest.mark.parametrize("kind", KINDS)
def test_a_huge_answer_body_is_not_read_whole(kind: str, files) -> None:
    total = 64 << 20
    with HostileHttp(flood(500, total)) as peer:
        report = deliver(dest(kind, peer.url), files["cr"])
        sent = peer.sent
    (outcome,) = report.outcomes
    assert (outcome.outcome, outcome.code) == ("transient", 500), report.summary()
    assert "HTTP 500 from" in (outcome.error or "") and "xxxx" in (outcome.error or "")
    # Read: at most 1 MiB (MAX_ANSWER_BYTES); the rest sat in socket buffers or was never sent.
    assert sent < total // 2


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize(
    ("status", "location"),
    [(302, "/elsewhere"), (307, "SELF")],  # to a GET that "succeeds"; a loop to itself
)
def test_redirects_are_not_followed_and_are_permanent(
    kind: str, status: int, location: str, files
) -> None:
    path = {"stowrs": "/studies", "orthanc": "/instances"}[kind]
    where = path if location == "SELF" else location
    with HostileHttp(reply(status, headers={"Location": where})) as peer:
        report = deliver(dest(kind, peer.url), files["cr"])
        seen = list(peer.seen)
    (outcome,) = report.outcomes
    assert (outcome.outcome, outcome.code) == ("permanent", status), report.summary()
    assert f"redirects to {where}" in (outcome.error or "")
    assert [(s.method, s.path) for s in seen] == [("POST", path)]  # sent once, nowhere else


INFINITE_FAILURE_REASON = (
    b'{"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1.2"]},'
    b' "00081197": {"vr": "US", "Value": [1e999]}}]}}'
)


@pytest.mark.parametrize(
    ("status", "headers", "body", "expected"),
    [
        (200, {}, b"stored, thanks", "delivered"),  # no Content-Type at all
        (200, DICOM_JSON, b"[]", "delivered"),
        (200, DICOM_JSON, b'{"00081199": {"vr": "SQ", "Value": "zz"}}', "delivered"),
        (200, DICOM_JSON, b"{not json", "delivered"),
        (200, DICOM_JSON, b"[" * 100_000, "delivered"),
        (202, DICOM_JSON, b'{"00081199": {"vr": "SQ", "Value": [1]}}', "transient"),
        # A Failure Reason of 1e999 (an infinite float) raised OverflowError out of deliver()
        (202, DICOM_JSON, INFINITE_FAILURE_REASON, "transient"),
        (409, DICOM_JSON, b"[]", "permanent"),
    ],
)
def test_malformed_stow_answers_are_outcomes_never_exceptions(
    status: int, headers: dict[str, str], body: bytes, expected: str, files
) -> None:
    """200 means all stored (PS3.18) whatever its body says; a 202 that cannot be read
    leaves each instance unaccounted for (transient); a 409 stored none (permanent)."""
    # "[" * 100_000 is parsed down to the recursion limit; a garbage collection there runs
    # the finalizers of earlier tests' cycles (an exchange that failed in urllib3 leaves
    # one through its frames, holding an http.client response) at that depth, where
    # they fail with RecursionError: pytest reports that as an unraisable exception.
    gc.collect()
    with HostileHttp(reply(status, body, headers)) as peer:
        report = deliver(dest("stowrs", peer.url), files["cr"])
    assert [(o.outcome, o.code) for o in report.outcomes] == [(expected, status)], report.summary()


@pytest.mark.parametrize("body", [b"[" * 100_000, b"{not json", b'{"Status": 5}'])
def test_an_orthanc_200_whose_json_cannot_be_read_is_delivered(body: bytes, files) -> None:
    """Orthanc's 200 means stored; its JSON only tells AlreadyStored apart. A body nested
    past the parser's recursion limit raised RecursionError out of deliver()."""
    gc.collect()  # see test_malformed_stow_answers_are_outcomes_never_exceptions
    with HostileHttp(reply(200, body, {"Content-Type": "application/json"})) as peer:
        report = deliver(dest("orthanc", peer.url), files["cr"])
    assert [(o.outcome, o.code) for o in report.outcomes] == [("delivered", 200)]


def test_a_202_with_a_charset_parameter_is_still_read_per_instance(files) -> None:
    warned, failed, unlisted = files["ct"] + files["cr"]

    def ref(path: Path, tag: str, code: int) -> dict:
        return {
            "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
            "00081155": {"vr": "UI", "Value": [uid_of(path)]},
            tag: {"vr": "US", "Value": [code]},
        }

    body = {
        "00081199": {  # Referenced SOP Sequence, with one instance that was never sent
            "vr": "SQ",
            "Value": [ref(warned, "00081196", 0xB000), ref(warned, "00081196", 0xB000)],
        },
        "00081198": {"vr": "SQ", "Value": [ref(failed, "00081197", 0xC000)]},
    }
    body["00081199"]["Value"][1]["00081155"]["Value"] = ["1.2.3.4.5.999"]
    headers = {"Content-Type": "application/dicom+json; charset=utf-8"}
    with HostileHttp(reply(202, json.dumps(body).encode(), headers)) as peer:
        report = deliver(dest("stowrs", peer.url), [warned, failed, unlisted])
    got = [(o.outcome, o.code, o.warning) for o in report.outcomes]
    assert got == [
        ("delivered", 0xB000, True),
        ("permanent", 0xC000, False),
        ("transient", 202, False),  # not in the answer
    ], report.summary()
    assert report.status == "transient"
