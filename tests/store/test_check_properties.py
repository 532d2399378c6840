"""Property-based tests of the structural check (dicom_node.store.check) on generated
datasets (tests/store/strategies.py), without a node:

- it never raises anything but its documented failures (StructureError, answered 0xC210;
  PixelDataMismatch, answered 0xA900), whatever the bytes;
- every valid generated dataset passes it and reads back through pydicom unchanged;
- every corruption it documents as detected is refused, with the documented failure.

CI runs a fixed set of examples; ``pytest --long`` many fresh ones (tests/support/hypo.py),
sized to stay within the suite's 300 s per test on a loaded 2-core machine.
"""

from __future__ import annotations

import warnings

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydicom.filebase import DicomBytesIO
from pydicom.filereader import read_dataset

from dicom_node.store.check import MAX_DEPTH, PixelDataMismatch, StructureError, check_dataset
from tests.store import strategies as gen
from tests.support.hypo import budget

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
FAILURES = (StructureError, PixelDataMismatch)
TRANSFER_SYNTAXES = st.sampled_from([gen.EXPLICIT, gen.IMPLICIT, gen.ENCAPSULATED])


def _check(body: bytes, ts: str) -> type[Exception] | None:
    """The failure the check raises on ``body`` (None if it passes); anything else that
    it raises fails the test."""
    try:
        check_dataset(body, ts)
    except FAILURES as err:
        return type(err)
    return None


def _round_trip(enc: gen.Encoded) -> bytes:
    fp = DicomBytesIO(enc.body)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = read_dataset(fp, enc.implicit, True)
        for elem in ds.iterall():
            _ = elem.value
    return gen.encode(ds, enc.ts)


@budget(ci=300, long=20_000)
@given(st.binary(max_size=512), TRANSFER_SYNTAXES)
def test_any_bytes_raise_only_documented_failures(body: bytes, ts: str) -> None:
    _check(body, ts)


@budget(ci=200, long=3_000)
@given(gen.encoded())
def test_valid_datasets_pass_and_round_trip(enc: gen.Encoded) -> None:
    assert _check(enc.body, enc.ts) is None
    assert _round_trip(enc) == enc.body


@budget(ci=300, long=4_000)
@given(gen.encoded(), st.data())
def test_documented_corruptions_are_refused(enc: gen.Encoded, data: st.DataObject) -> None:
    kinds = ["truncate", "lie"] + ([] if enc.implicit else ["vr"])
    kinds += ["short_pixels"] if enc.pixel_need else []
    kind = data.draw(st.sampled_from(kinds), label="corruption")
    if kind == "truncate":
        body = gen.truncate_inside_an_element(data, enc)
    elif kind == "lie":
        body = gen.lie_about_a_length(data, enc)
    elif kind == "vr":
        body = gen.wrong_vr(data, enc)
    else:
        body = gen.short_pixels(data, enc)
    expected = PixelDataMismatch if kind == "short_pixels" else StructureError
    assert _check(body, enc.ts) is expected, kind


@budget(ci=300, long=4_000)
@given(gen.encoded(), st.data())
def test_random_damage_raises_only_documented_failures(
    enc: gen.Encoded, data: st.DataObject
) -> None:
    body = bytearray(enc.body)
    assume(body)
    for _ in range(data.draw(st.integers(1, 8), label="flips")):
        at = data.draw(st.integers(0, len(body) - 1), label="at")
        body[at] = data.draw(st.integers(0, 255), label="byte")
    _check(bytes(body), enc.ts)


@budget(ci=40, long=500)
@given(gen.NESTING, st.booleans(), st.sampled_from([gen.EXPLICIT, gen.IMPLICIT]))
def test_nesting_deeper_than_the_limit_is_refused(depth: int, undefined: bool, ts: str) -> None:
    body = gen.encode(gen.nested(depth, undefined), ts)
    assert _check(body, ts) is (StructureError if depth > MAX_DEPTH else None)


@budget(ci=100, long=2_000)
@given(gen.encoded())
def test_implicit_bytes_on_an_explicit_context_are_refused(enc: gen.Encoded) -> None:
    """Implicit-VR bytes read as explicit: the first element's length sits where its VR
    should be; no VR starts with a byte below 'A'."""
    assume(enc.implicit and len(enc.body) >= 8 and enc.body[4] < 0x41)
    assert _check(enc.body, gen.EXPLICIT) is StructureError


@budget(ci=100, long=2_000)
@given(gen.encoded())
def test_pixel_data_encoding_must_match_the_transfer_syntax(enc: gen.Encoded) -> None:
    """Native Pixel Data on an encapsulated syntax; encapsulated on a native one."""
    assume("PixelData" in enc.ds)
    if enc.ts == gen.ENCAPSULATED:
        assert _check(enc.body, gen.EXPLICIT) is StructureError
    else:
        assume(not enc.implicit)
        assert _check(enc.body, gen.ENCAPSULATED) is StructureError
