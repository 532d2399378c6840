"""Private codes are declared in the SR's Coding Scheme Identification Sequence."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from sr_writer import Code, ImageResult, WriteOptions
from tests.support.dicom3tools import dciodvfy

from .support import MODEL, SOURCES, WHEN, labels, needs_dciodvfy, save, write

PRIVATE = Code("PLEURAL_THICKENING", "99DCMNODE", "Pleural thickening")
OTHER = Code("X1", "99MYSITE", "Site finding")


def _results(ds):
    base = labels()
    extra = (
        dataclasses.replace(base[2], name="pleural_thickening", code=PRIVATE),
        dataclasses.replace(base[2], name="site", code=OTHER),
    )
    return [ImageResult(str(ds.SOPInstanceUID), None, MODEL, (*base, *extra))]


def test_every_scheme_outside_the_standard_ones_is_declared() -> None:
    sources = SOURCES["cr"]()
    out = write(sources, WriteOptions(created_at=WHEN), _results(sources[0]))
    declared = {
        item.CodingSchemeDesignator: item for item in out.sr.CodingSchemeIdentificationSequence
    }
    assert {"99DCMNODE", "99MYSITE", "99IHE"} <= set(declared)
    assert declared["99DCMNODE"].CodingSchemeName
    assert not {"DCM", "SCT", "LN", "UCUM"} & set(declared)


@needs_dciodvfy
def test_dciodvfy_knows_no_private_scheme_but_nothing_else_is_flagged(tmp_path: Path) -> None:
    """dciodvfy checks Coding Scheme Designator against its own list of defined terms
    and ignores the declarations (99IHE is on its list, no other 99 scheme is): each
    use of a private code is one "Unrecognized defined term" warning, declared or not.
    Nothing else about coding schemes is flagged."""
    sources = SOURCES["cr"]()
    out = write(sources, WriteOptions(created_at=WHEN), _results(sources[0]))
    errors, warnings = dciodvfy(save(out.sr, tmp_path, "sr"))
    assert errors == []
    about_schemes = [w for w in warnings if "Coding Scheme" in w]
    private = {"<99DCMNODE>", "<99MYSITE>"}
    assert all(
        "Unrecognized defined term" in w and any(p in w for p in private) for w in about_schemes
    ), about_schemes
    assert "RFC5646" not in {
        i.CodingSchemeDesignator for i in out.sr.CodingSchemeIdentificationSequence
    }


@pytest.mark.parametrize("scheme", ["99DCMNODE"])
def test_bundled_labels_private_codes_use_declared_scheme(scheme: str) -> None:
    from ai.labels import LABEL_CODES

    private = [c for c in LABEL_CODES.values() if c.scheme.startswith("99")]
    assert {c.scheme for c in private} <= {scheme}
