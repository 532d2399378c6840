"""highdicom reads the SR back and every probability, code, threshold and reference
round-trips; placement, observer, flags and AIR equipment are as the checklist says."""

from __future__ import annotations

from pathlib import Path

import highdicom as hd
import pytest
from pydicom.sr.codedict import codes

from sr_writer import WriteOptions
from sr_writer.codes import CERTAINTY_OF_FINDING
from sr_writer.options import DEMO_NOTICE

from .support import MODEL, SOURCES, WHEN, result_for, save, write

ALGO_PARAMS = hd.sr.CodedConcept("111002", "DCM", "Algorithm Parameters")
ALGO_NAME = hd.sr.CodedConcept("111001", "DCM", "Algorithm Name")
ALGO_VERSION = hd.sr.CodedConcept("111003", "DCM", "Algorithm Version")


def _text(group, concept) -> list[str]:
    """TEXT values of the group's direct children named ``concept``."""
    return [
        item.TextValue
        for item in group[0].ContentSequence
        if item.ConceptNameCodeSequence[0].CodeValue == concept.value
        and item.ConceptNameCodeSequence[0].CodingSchemeDesignator == concept.scheme_designator
    ]


@pytest.mark.parametrize("kind", ["cr", "ct"])
def test_values_round_trip(kind: str, tmp_path: Path) -> None:
    sources = SOURCES[kind]()
    results = [result_for(ds, pneumothorax=0.83 - 0.1 * i) for i, ds in enumerate(sources)]
    out = write(sources, WriteOptions(created_at=WHEN), results)
    sr = hd.sr.srread(save(out.sr, tmp_path, "sr"))
    assert isinstance(sr, hd.sr.Comprehensive3DSR)
    groups = sr.content.get_image_measurement_groups()
    expected = [(r, label) for r in results for label in r.labels]
    assert len(groups) == len(expected)
    tracking_uids = set()
    for group, (result, label) in zip(groups, expected, strict=True):
        assert group.finding_type.value == label.code.value
        assert group.finding_type.scheme_designator == label.code.scheme
        assert group.finding_type.meaning == label.code.meaning
        assert label.code.meaning in group.tracking_identifier
        tracking_uids.add(group.tracking_uid)
        (measurement,) = group.get_measurements()
        assert measurement.name == CERTAINTY_OF_FINDING
        assert measurement.value == pytest.approx(label.probability)
        assert measurement.unit.value == "1" and measurement.unit.scheme_designator == "UCUM"
        (decision,) = group.get_qualitative_evaluations()
        assert decision.name.value == label.code.value
        assert decision.value.meaning == ("Present" if label.positive else "Absent")
        assert _text(group, ALGO_NAME) == [MODEL.name]
        assert _text(group, ALGO_VERSION) == [MODEL.version]
        # MODEL is a demo model: its algorithm identification says so.
        assert _text(group, ALGO_PARAMS) == [f"threshold={label.threshold:g}", DEMO_NOTICE]
        (source,) = group.source_images
        assert source.referenced_sop_instance_uid == result.sop_instance_uid
    assert len(tracking_uids) == len(groups)

    (observer,) = sr.content.get_observer_contexts()
    assert observer.observer_type == codes.DCM.Device
    attrs = observer.observer_identifying_attributes
    assert attrs.uid == MODEL.device_uid
    procedure = sr.content[0].ContentSequence
    reported = [i for i in procedure if i.ConceptNameCodeSequence[0].CodeValue == "121058"]
    assert reported[0].ConceptCodeSequence[0].CodeValue == (
        "43468-8" if kind == "cr" else "25045-6"
    )

    evidence = {
        ref.ReferencedSOPInstanceUID
        for study in sr.CurrentRequestedProcedureEvidenceSequence
        for series in study.ReferencedSeriesSequence
        for ref in series.ReferencedSOPSequence
    }
    assert evidence == {str(ds.SOPInstanceUID) for ds in sources}


def test_placement_flags_and_equipment() -> None:
    sources = SOURCES["cr"]()
    out = write(sources)
    src, sr = sources[0], out.sr
    assert sr.SOPClassUID == "1.2.840.10008.5.1.4.1.1.88.34"
    assert sr.Modality == "SR"
    for keyword in (
        "StudyInstanceUID",
        "PatientID",
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "StudyDescription",
    ):
        assert sr[keyword].value == src[keyword].value, keyword
    assert sr.SeriesInstanceUID not in (src.SeriesInstanceUID, out.card.SeriesInstanceUID)
    assert out.card.Modality == "OT"
    assert "AI" in sr.SeriesDescription and MODEL.name in sr.SeriesDescription
    assert sr.VerificationFlag == "UNVERIFIED"
    assert sr.CompletionFlag == "COMPLETE"
    title = sr.ConceptNameCodeSequence[0]
    assert (title.CodeValue, title.CodingSchemeDesignator) == ("126000", "DCM")
    air = [
        item
        for item in sr.ContributingEquipmentSequence
        if item.PurposeOfReferenceCodeSequence[0].CodeValue == "Newcode1"
    ]
    assert len(air) == 1
    item = air[0]
    assert item.PurposeOfReferenceCodeSequence[0].CodingSchemeDesignator == "99IHE"
    assert item.PurposeOfReferenceCodeSequence[0].CodeMeaning == "Processing Algorithm"
    assert (
        item.Manufacturer,
        item.ManufacturerModelName,
        item.SoftwareVersions,
        item.DeviceUID,
    ) == (MODEL.manufacturer, MODEL.name, MODEL.version, MODEL.device_uid)


def test_positive_only_writes_positives() -> None:
    sources = SOURCES["cr"]()
    out = write(sources, WriteOptions(created_at=WHEN, sr_labels="positive"))
    groups = hd.sr.Comprehensive3DSR.from_dataset(out.sr).content.get_image_measurement_groups()
    assert [g.finding_type.meaning for g in groups] == ["Pneumothorax"]


def test_positive_only_without_positives_states_no_finding() -> None:
    sources = SOURCES["cr"]()
    results = [result_for(sources[0], pneumothorax=0.2)]
    out = write(sources, WriteOptions(created_at=WHEN, sr_labels="positive"), results)
    content = hd.sr.Comprehensive3DSR.from_dataset(out.sr).content
    assert content.get_image_measurement_groups() == []
    # A qualitative evaluation of the whole image (TID 1410: OHIF needs coordinates).
    groups = content.get_planar_roi_measurement_groups()
    assert len(groups) == 1
    region = groups[0].roi.value
    assert region.max(axis=0).tolist() == [sources[0].Columns, sources[0].Rows]
    (statement,) = groups[0].get_qualitative_evaluations()
    assert statement.value.value == "111241"  # All algorithms succeeded; without findings
    assert "No finding above threshold" in groups[0].tracking_identifier
    (comment,) = _text(groups[0], codes.DCM.Comment)
    assert "pneumothorax" in comment and "cardiomegaly" in comment
