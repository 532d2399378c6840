"""The UIDs a peer proposes are validated as pynetdicom validates them, though the node
remembers each string's result (``network/uid_validation.py``): the validator's answers,
and what a real node does with bad UIDs, the first time and when the result is reused."""

from __future__ import annotations

import struct
from collections.abc import Iterator

import pytest
from pynetdicom import _config
from pynetdicom._validators import validate_ui
from pynetdicom.sop_class import CTImageStorage, Verification

from dicom_node.network.uid_validation import MemoisedUIValidator, install
from tests.network import pdus
from tests.support.node_process import NodeProcess

LONG = "1.2.3." + "4" * 59  # 65 characters: one more than a UI may hold
VALUES = [
    CTImageStorage,
    pdus.EXPLICIT,
    "1.2.3",
    LONG,
    "1.2.3." + "4" * 58,  # 64: the longest allowed
    "1.2.abc.4",  # not a conformant UID, short enough
    "01.2",  # leading zero: non-conformant
    "",
]


@pytest.fixture
def enforce() -> Iterator[None]:
    before = _config.ENFORCE_UID_CONFORMANCE
    yield
    _config.ENFORCE_UID_CONFORMANCE = before


@pytest.mark.parametrize("strict", [False, True])
def test_memoised_validator_answers_as_pynetdicoms(strict: bool, enforce: None) -> None:
    memo = MemoisedUIValidator(validate_ui)
    for flag in (strict, not strict, strict):  # the flag is part of what is remembered
        _config.ENFORCE_UID_CONFORMANCE = flag
        for value in VALUES * 2:  # the second time from memory
            assert memo(value) == validate_ui(value), (value, flag)
    assert memo(b"1.2.3") == validate_ui(b"1.2.3")  # not a str: (False, "must be ...")


def test_memory_stays_bounded() -> None:
    calls = []

    def counting(value: str) -> tuple[bool, str]:
        calls.append(value)
        return validate_ui(value)

    memo = MemoisedUIValidator(counting, max_entries=10)
    for i in range(35):
        memo(f"1.2.{i}")
    assert len(memo._results) <= 10
    memo("1.2.34")
    assert len(calls) == 35  # the most recent ones are still remembered
    memo("1.2.0")
    assert len(calls) == 36  # an early one was forgotten and is validated again


def test_install_wraps_the_configured_validator_once() -> None:
    before = _config.VALIDATORS["UI"]
    try:
        assert install() and install()
        current = _config.VALIDATORS["UI"]
        assert isinstance(current, MemoisedUIValidator)
        assert not isinstance(current.original, MemoisedUIValidator)
    finally:
        _config.VALIDATORS["UI"] = before


def _first_reply(port: int, contexts: tuple[tuple[int, str, str], ...]) -> pdus.Pdu:
    with pdus.connect(port) as sock:
        sock.sendall(pdus.associate_rq(contexts=contexts))
        return next(pdus.read_pdus(sock))


def _context_results(ac: pdus.Pdu) -> dict[int, int]:
    """Presentation context id -> result (0 acceptance, 3 abstract syntax not supported,
    4 transfer syntaxes not supported) of an A-ASSOCIATE-AC."""
    results, at = {}, 68  # after the fixed fields
    while at < len(ac.body):
        kind, length = ac.body[at], struct.unpack(">H", ac.body[at + 2 : at + 4])[0]
        if kind == 0x21:
            results[ac.body[at + 4]] = ac.body[at + 6]
        at += 4 + length
    return results


ECHO = (pdus.ECHO_CX, Verification, pdus.IMPLICIT)
# (name, contexts, expected first reply, expected result of context 3 if accepted)
CASES = [
    ("valid", (ECHO, (3, CTImageStorage, pdus.EXPLICIT)), pdus.A_ASSOCIATE_AC, 0),
    ("65-character abstract syntax", (ECHO, (3, LONG, pdus.EXPLICIT)), pdus.A_ABORT, None),
    ("65-character transfer syntax", (ECHO, (3, CTImageStorage, LONG)), pdus.A_ABORT, None),
    ("non-conformant abstract syntax", (ECHO, (3, "1.2.abc.4", pdus.EXPLICIT)), 2, 3),
    ("non-conformant transfer syntax", (ECHO, (3, CTImageStorage, "1.2.x")), 2, 4),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_uids_are_refused_as_before(hostile_node: NodeProcess, case) -> None:  # type: ignore[no-untyped-def]
    _, contexts, kind, result = case
    for _ in range(3):  # the first time validated, then from memory
        reply = _first_reply(hostile_node.port, contexts)
        assert reply.kind == kind, reply
        if kind == pdus.A_ASSOCIATE_AC:
            assert _context_results(reply) == {pdus.ECHO_CX: 0, 3: result}
    assert pdus.exchange_associated(hostile_node.port, pdus.RELEASE_RQ)[-1].kind == 0x06


def test_the_node_validates_each_uid_string_once(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pynetdicom import AE

    from dicom_node.node import Node
    from dicom_node.settings.root import validate_config
    from tests.support.ports import free_port

    before = _config.VALIDATORS["UI"]
    _config.VALIDATORS["UI"] = validate_ui  # as a fresh process has it
    cfg = validate_config(
        {"data_dir": str(tmp_path / "data"), "port": free_port(), "bind_address": "127.0.0.1"}
    )
    node = Node(cfg)
    node.start()
    try:
        memo = _config.VALIDATORS["UI"]
        assert isinstance(memo, MemoisedUIValidator) and memo.original is validate_ui
        ae = AE(ae_title="INPROC")
        ae.add_requested_context(CTImageStorage, pdus.EXPLICIT)
        assoc = ae.associate("127.0.0.1", cfg.port, ae_title="DICOM_NODE")
        assert assoc.is_established
        assoc.release()
        assert (str(CTImageStorage), False) in memo._results
    finally:
        node.stop()
        _config.VALIDATORS["UI"] = before
