"""Same inputs + same model => same UIDs and byte-identical objects."""

from __future__ import annotations

import dataclasses
from io import BytesIO

from pydicom.dataset import Dataset

from sr_writer import WriteOptions

from .support import MODEL, SOURCES, WHEN, result_for, write

TIME_ATTRIBUTES = {
    "InstanceCreationDate",
    "InstanceCreationTime",
    "ContentDate",
    "ContentTime",
    "SeriesDate",
    "SeriesTime",
    "DateOfSecondaryCapture",
    "TimeOfSecondaryCapture",
    "ContributionDateTime",
}


def _bytes(ds: Dataset) -> bytes:
    buffer = BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def _uids(out) -> list[str]:
    return [(ds.SeriesInstanceUID, ds.SOPInstanceUID) for ds in out.all()]


def test_same_inputs_give_identical_objects() -> None:
    sources = SOURCES["ct"]()
    first = write(sources)
    second = write(SOURCES["ct"]())  # regenerated sources, same content
    assert _uids(first) == _uids(second)
    # SR, 3 heatmaps, card, KOS
    assert len(first.all()) == len(second.all()) == 1 + 3 + 1 + 1
    for a, b in zip(first.all(), second.all(), strict=True):
        assert _bytes(a) == _bytes(b), a.SOPInstanceUID


def test_parametric_maps_are_deterministic() -> None:
    options = WriteOptions(created_at=WHEN, parametric_map=True)
    first, second = write(SOURCES["ct"](), options), write(SOURCES["ct"](), options)
    assert len(first.pmaps) == 1 and first.pmaps[0].NumberOfFrames == 3
    for a, b in zip(first.pmaps, second.pmaps, strict=True):
        assert _bytes(a) == _bytes(b), a.SOPInstanceUID


def test_uids_are_distinct_and_2_25() -> None:
    out = write(SOURCES["ct"](), WriteOptions(created_at=WHEN, parametric_map=True))
    uids = [uid for pair in _uids(out) for uid in pair]
    sops = [ds.SOPInstanceUID for ds in out.all()]
    assert len(set(sops)) == len(sops)
    assert out.kos is not None and out.pmaps
    assert (
        len(
            {
                out.sr.SeriesInstanceUID,
                out.card.SeriesInstanceUID,
                out.kos.SeriesInstanceUID,
                out.pmaps[0].SeriesInstanceUID,
            }
        )
        == 4
    )
    assert all(uid.startswith("2.25.") and len(uid) <= 64 for uid in uids)


def test_other_model_version_or_weights_give_other_uids() -> None:
    sources = SOURCES["cr"]()
    base = write(sources)
    for change in ({"version": "1.0.1"}, {"device_uid": "2.25.99"}, {"name": "other"}):
        model = dataclasses.replace(MODEL, **change)
        other = write(sources, results=[result_for(sources[0], model=model)])
        assert not set(_uids(base)) & set(_uids(other)), change


def _differing(p: Dataset, q: Dataset) -> set[str]:
    """Keywords whose values differ between two datasets of the same structure."""
    assert set(p.keys()) == set(q.keys())
    out: set[str] = set()
    for elem in p:
        other = q[elem.tag]
        if elem.VR == "SQ":
            assert len(elem.value) == len(other.value)
            for i, j in zip(elem.value, other.value, strict=True):
                out |= _differing(i, j)
        elif elem.value != other.value:
            out.add(elem.keyword)
    return out


def test_without_created_at_only_timestamps_differ() -> None:
    """With no fixed timestamp the UIDs and all content but the date/times agree."""
    sources = SOURCES["cr"]()
    a = write(sources, WriteOptions(created_at=None))
    b = write(sources, WriteOptions(created_at=WHEN))
    assert _uids(a) == _uids(b)
    for x, y in zip(a.all(), b.all(), strict=True):
        differing = _differing(x, y)
        assert differing, "the timestamps should differ from the fixed one"
        assert differing <= TIME_ATTRIBUTES, differing
