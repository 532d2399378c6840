"""What every result object shares: study placement, timestamps, equipment."""

from __future__ import annotations

import datetime as dt

from highdicom.sr import DeviceObserverIdentifyingAttributes, ObserverContext
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence
from pydicom.sr.codedict import codes

from sr_writer.codes import PROCESSING_ALGORITHM
from sr_writer.inputs import ModelIdentity
from sr_writer.options import DEFAULT_CAUTION, DEMO_CAUTION, WriteOptions
from sr_writer.source_values import TEXT_VRS, UNPAIRED_BODY_PARTS, sanitized_copy

# Patient and General Study attributes copied verbatim from the source (when present)
# on top of what highdicom copies itself.
EXTRA_PATIENT_STUDY = (
    "IssuerOfPatientID",
    "OtherPatientIDsSequence",
    "PatientBirthTime",
    "PatientAge",
    "PatientSize",
    "PatientWeight",
    "StudyDescription",
)
# Type 2 attributes highdicom reads from the source; absent ones are written empty.
TYPE2_DEFAULTS = {
    "PatientBirthDate": "",
    "PatientSex": "",
    "AccessionNumber": "",
    "StudyID": "",
    "StudyDate": "",
    "StudyTime": "",
    "ReferringPhysicianName": "",
}
HEADER_ATTRIBUTES = (
    "SpecificCharacterSet",
    "SOPClassUID",
    "SOPInstanceUID",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "PatientID",
    "PatientName",
    "Modality",
    "BodyPartExamined",
    "Laterality",
    "FrameOfReferenceUID",
    "NumberOfFrames",
    "Rows",
    "Columns",
    "SamplesPerPixel",
    "PixelRepresentation",
    "PatientOrientation",
    "ImagerPixelSpacing",
    "PixelSpacing",
    "ImageOrientationPatient",
    "ImagePositionPatient",
    "SliceThickness",
    *TYPE2_DEFAULTS,
    *EXTRA_PATIENT_STUDY,
)


def header(ds: Dataset) -> Dataset:
    """Copy the source attributes the writers need, without pixels.

    Type 2 attributes are filled; values that would be invalid in a result are fixed
    or dropped (:mod:`sr_writer.source_values`).
    """
    out = Dataset()
    for keyword in HEADER_ATTRIBUTES:
        if keyword in ds:
            out[keyword] = ds[keyword]
    for keyword, empty in TYPE2_DEFAULTS.items():
        if keyword not in out:
            setattr(out, keyword, empty)
    return sanitized_copy(out)


def copy_extra_patient_study(target: Dataset, source: Dataset) -> None:
    """Copy the Patient/Study attributes highdicom does not copy itself."""
    for keyword in EXTRA_PATIENT_STUDY:
        if keyword in source and source[keyword].value not in (None, ""):
            target[keyword] = source[keyword]


def created_at(options: WriteOptions) -> dt.datetime:
    """Return the timestamp written into every object (see ``WriteOptions.created_at``)."""
    when = options.created_at or dt.datetime.now(dt.UTC)
    return when.replace(microsecond=0, tzinfo=None)


def set_times(ds: Dataset, when: dt.datetime, *keywords_pairs: tuple[str, str]) -> None:
    """Overwrite the (date, time) attribute pairs with ``when``."""
    for date_kw, time_kw in keywords_pairs:
        setattr(ds, date_kw, when.strftime("%Y%m%d"))
        setattr(ds, time_kw, when.strftime("%H%M%S"))


def caution_line(model: ModelIdentity, options: WriteOptions) -> str:
    """Return the burned-in caution line for this model."""
    if options.caution is not None:
        return options.caution
    return DEMO_CAUTION if model.demo else DEFAULT_CAUTION


def series_description(model: ModelIdentity, kind: str) -> str:
    """Return a Series Description (LO, 64 chars) that says AI output, naming the model."""
    suffix = " (NON-CLINICAL DEMO)" if model.demo else ""
    return f"AI {kind}: {model.name} {model.version}"[: 64 - len(suffix)] + suffix


def declare_scheme(ds: Dataset, scheme: tuple[str, str, str, str]) -> None:
    """Declare (designator, UID, name, organisation) in the Coding Scheme Identification.

    Nothing is added when that designator is declared already.
    """
    designator, uid, name, organisation = scheme
    existing = list(ds.get("CodingSchemeIdentificationSequence", []))
    if any(s.CodingSchemeDesignator == designator for s in existing):
        return
    item = Dataset()
    item.CodingSchemeDesignator = designator
    item.CodingSchemeUID = uid
    item.CodingSchemeName = name
    item.CodingSchemeResponsibleOrganization = organisation
    ds.CodingSchemeIdentificationSequence = DicomSequence([*existing, item])


def append_algorithm_equipment(ds: Dataset, model: ModelIdentity, when: dt.datetime) -> None:
    """Append the IHE AIR "Processing Algorithm" item to Contributing Equipment.

    highdicom's ContributingEquipment refuses the 99IHE purpose code, so the item is
    added after the object is built.
    """
    item = Dataset()
    item.PurposeOfReferenceCodeSequence = [PROCESSING_ALGORITHM]
    item.Manufacturer = model.manufacturer[:64]
    item.ManufacturerModelName = model.name[:64]
    item.SoftwareVersions = model.version[:64]
    item.DeviceUID = model.device_uid
    item.ContributionDateTime = when.strftime("%Y%m%d%H%M%S")
    item.ContributionDescription = f"AI inference: {model.name} {model.version}"[:64]
    scheme = Dataset()
    scheme.CodingSchemeDesignator = PROCESSING_ALGORITHM.scheme_designator
    scheme.CodingSchemeName = "IHE Radiology Technical Framework codes"
    scheme.CodingSchemeResponsibleOrganization = "IHE"
    schemes = [
        s
        for s in ds.get("CodingSchemeIdentificationSequence", [])
        if s.CodingSchemeDesignator != scheme.CodingSchemeDesignator
    ]
    ds.CodingSchemeIdentificationSequence = DicomSequence([*schemes, scheme])
    existing = list(ds.get("ContributingEquipmentSequence", []))
    for other in existing:  # highdicom stamps its own item with the current time
        if "ContributionDateTime" in other:
            other.ContributionDateTime = item.ContributionDateTime
    ds.ContributingEquipmentSequence = DicomSequence([*existing, item])


# Text in the results may mix the source's characters and the model's. Latin-1 when
# that is enough (DCMTK's VR checker does not handle UTF-8 and warns), else UTF-8.
CHARACTER_SET = "ISO_IR 192"


def _latin1(ds: Dataset) -> bool:
    for element in ds:
        if element.VR == "SQ":
            if not all(_latin1(item) for item in element.value):
                return False
        elif element.VR in TEXT_VRS and element.value is not None:
            values = element.value if element.VM > 1 else [element.value]
            try:
                for value in values:
                    str(value).encode("latin-1")
            except UnicodeEncodeError:
                return False
    return True


def settle_character_set(ds: Dataset) -> None:
    """Set Specific Character Set to ISO_IR 100 if all text is Latin-1, else ISO_IR 192."""
    ds.SpecificCharacterSet = "ISO_IR 100" if _latin1(ds) else "ISO_IR 192"


def copy_laterality(target: Dataset, source: Dataset) -> None:
    """Body Part Examined and Laterality (General Series) from the (sanitised) source.

    Laterality is type 2C: required for paired body parts, absent for unpaired ones
    (PS3.16 Annex L). The source's R/L is kept; otherwise it is left out for an unpaired
    body part and written empty (unknown) for any other or no body part.
    """
    body_part = str(source.get("BodyPartExamined", "") or "")
    if body_part:
        target.BodyPartExamined = body_part
    if source.get("Laterality"):
        target.Laterality = source.Laterality
    elif body_part.upper() not in UNPAIRED_BODY_PARTS:
        target.Laterality = None


def device_observer(model: ModelIdentity) -> ObserverContext:
    """Return the model as the Device observer of an SR or KOS (TID 1004)."""
    return ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=DeviceObserverIdentifyingAttributes(
            uid=model.device_uid,
            name=model.name[:64],
            manufacturer_name=model.manufacturer[:64],
            model_name=f"{model.name} {model.version}"[:64],
        ),
    )
