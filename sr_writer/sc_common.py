"""Building a Secondary Capture image (highdicom SCImage) into the source's study."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
from highdicom.sc import SCImage
from pydicom.dataset import Dataset

from sr_writer import codes as c
from sr_writer.common import (
    CHARACTER_SET,
    append_algorithm_equipment,
    copy_extra_patient_study,
    copy_laterality,
    series_description,
    set_times,
    settle_character_set,
)
from sr_writer.inputs import ModelIdentity
from sr_writer.options import WriteOptions
from sr_writer.source_values import valid_orientation

_DIRECTIONS = (("L", "R"), ("P", "A"), ("H", "F"))


def _letters(vector: Sequence[float]) -> str:
    """Patient Orientation letters (PS3.3 C.7.6.1.1.1) of a direction cosine vector."""
    out = ""
    order = sorted(range(3), key=lambda i: -abs(float(vector[i])))
    for i in order:
        value = float(vector[i])
        if abs(value) < 1e-4:  # rounding noise, not obliquity
            continue
        out += _DIRECTIONS[i][0] if value > 0 else _DIRECTIONS[i][1]
    return out[:3]


def patient_orientation(source: Dataset) -> tuple[str, str] | None:
    """Return the Patient Orientation, given or derived from Image Orientation (Patient).

    Oblique images get up to three letters per value, principal direction first
    (e.g. ``PF``), as PS3.3 allows; None when neither attribute gives a valid pair.
    """
    po = valid_orientation(source.get("PatientOrientation"))
    if po is not None:
        return po
    iop = source.get("ImageOrientationPatient")
    if iop is not None and len(iop) == 6:
        return valid_orientation([_letters(iop[:3]), _letters(iop[3:])])
    return None


def build_sc(
    pixels: np.ndarray,
    header: Dataset,
    sources: Sequence[tuple[Dataset, int | None]],
    *,
    model: ModelIdentity,
    options: WriteOptions,
    series_uid: str,
    sop_uid: str,
    instance_number: int,
    when: dt.datetime,
    orientation: tuple[str, str] | None,
    pixel_spacing: tuple[float, float] | None,
    derivation: str,
) -> SCImage:
    """Build an 8-bit RGB uncompressed SC referencing ``sources`` as its source images."""
    sc = SCImage(
        pixel_array=pixels,
        photometric_interpretation="RGB",
        bits_allocated=8,
        coordinate_system="PATIENT",
        study_instance_uid=str(header.StudyInstanceUID),
        series_instance_uid=series_uid,
        series_number=options.sc_series_number,
        sop_instance_uid=sop_uid,
        instance_number=instance_number,
        manufacturer=options.manufacturer,
        patient_id=str(header.PatientID),
        patient_name=header.PatientName,
        patient_birth_date=header.PatientBirthDate,
        patient_sex=header.PatientSex or None,
        accession_number=header.AccessionNumber,
        study_id=header.StudyID,
        study_date=header.StudyDate or None,
        study_time=header.StudyTime or None,
        referring_physician_name=header.ReferringPhysicianName,
        pixel_spacing=pixel_spacing,
        # highdicom takes single letters only; the full values are set below.
        patient_orientation=(orientation[0][0], orientation[1][0]) if orientation else ("L", "F"),
        transfer_syntax_uid="1.2.840.10008.1.2.1",
        series_description=series_description(model, "heatmaps"),
        content_date=when.date(),
        content_time=when.time(),
        series_date=when.date(),
        series_time=when.time(),
        specific_character_set=CHARACTER_SET,
        manufacturer_model_name="dicom-node",
        software_versions=options.software_version,
        institution_name=options.institution_name,
    )
    # type 2: present, empty when unknown
    sc.PatientOrientation = list(orientation) if orientation is not None else None
    if not header.PatientSex:
        sc.PatientSex = None
    if not header.StudyDate:
        sc.StudyDate = None
    if not header.StudyTime:
        sc.StudyTime = None
    set_times(
        sc,
        when,
        ("InstanceCreationDate", "InstanceCreationTime"),
        ("DateOfSecondaryCapture", "TimeOfSecondaryCapture"),
    )
    sc.ImageType = ["DERIVED", "SECONDARY"]
    sc.BurnedInAnnotation = "YES"
    sc.LossyImageCompression = "00"
    sc.DerivationDescription = derivation[:1024]
    refs = []
    for src, frame in sources:
        item = Dataset()
        item.ReferencedSOPClassUID = src.SOPClassUID
        item.ReferencedSOPInstanceUID = src.SOPInstanceUID
        if frame is not None:
            item.ReferencedFrameNumber = frame
        item.PurposeOfReferenceCodeSequence = [c.SOURCE_IMAGE_FOR_PROCESSING]
        refs.append(item)
    sc.SourceImageSequence = refs
    copy_extra_patient_study(sc, header)
    copy_laterality(sc, header)
    append_algorithm_equipment(sc, model, when)
    settle_character_set(sc)
    return sc
