"""Synthetic, IOD-conformant DICOM studies for the quick tour, tests and benchmarks.

Pixel data is deterministic from a seed; every instance carries the Patient, Study,
Series, Equipment, Image and SOP Common modules its IOD requires.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    ExplicitVRLittleEndian,
    generate_uid,
)

CT_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.2"
CR_IMAGE_STORAGE = "1.2.840.10008.5.1.4.1.1.1"
DX_IMAGE_FOR_PRESENTATION = "1.2.840.10008.5.1.4.1.1.1.1"


@dataclass(frozen=True)
class Patient:
    patient_id: str = "SYN0001"
    name: str = "SYNTHETIC^PATIENT"
    birth_date: str = "19700101"
    sex: str = "O"


def _uid(*parts: object) -> str:
    """A deterministic 2.25 UID from ``parts``."""
    digest = hashlib.sha256("|".join(map(str, parts)).encode()).digest()
    return "2.25." + str(int.from_bytes(digest[:16], "big"))


def _base(
    sop_class: str,
    sop_uid: str,
    study_uid: str,
    series_uid: str,
    patient: Patient,
    modality: str,
    series_number: int,
    instance_number: int,
    when: dt.datetime,
    accession: str,
    description: str,
) -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.InstanceCreationDate = when.strftime("%Y%m%d")
    ds.InstanceCreationTime = when.strftime("%H%M%S")
    # Patient
    ds.PatientName = patient.name
    ds.PatientID = patient.patient_id
    ds.PatientBirthDate = patient.birth_date
    ds.PatientSex = patient.sex
    # General Study
    ds.StudyInstanceUID = study_uid
    ds.StudyDate = when.strftime("%Y%m%d")
    ds.StudyTime = when.strftime("%H%M%S")
    ds.ReferringPhysicianName = ""
    ds.StudyID = "1"
    ds.AccessionNumber = accession
    ds.StudyDescription = f"SYNTHETIC {modality} STUDY"
    # General Series
    ds.Modality = modality
    ds.SeriesInstanceUID = series_uid
    ds.SeriesNumber = series_number
    ds.SeriesDate = ds.StudyDate
    ds.SeriesTime = ds.StudyTime
    ds.SeriesDescription = description
    # General Equipment
    ds.Manufacturer = "dicom-node synthetic"
    ds.InstitutionName = "Synthetic Hospital"
    ds.StationName = "SYNTH01"
    ds.ManufacturerModelName = "synthetic"
    ds.SoftwareVersions = "1"
    # General Image
    ds.InstanceNumber = instance_number
    ds.ContentDate = ds.StudyDate
    ds.ContentTime = ds.StudyTime
    ds.BurnedInAnnotation = "NO"
    return ds


def _set_pixels_mono(ds: Dataset, pixels: np.ndarray, photometric: str, bits: int) -> None:
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = photometric
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    ds.PixelData = pixels.astype("<u2").tobytes()


# Patient Orientation of a frontal chest radiograph (PA or AP) stored the way it is
# conventionally displayed: as if the viewer faces the patient, the patient's right on
# the viewer's left. PS3.3 C.7.6.1.1.1: the first value is the direction of the rows
# (from the first towards the last pixel of a row, i.e. towards the image's right edge),
# here towards the patient's Left; the second that of the columns (downwards), towards
# the Feet. Hence L\F for PA as for AP; R\F would mean the image is seen from behind.
DISPLAYED_FRONTAL = ("L", "F")


def _chest_phantom(rows: int, cols: int, seed: int, bits: int) -> np.ndarray:
    """A smooth chest-like pattern (two lungs, mediastinum, ribs) plus noise."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    y /= rows
    x /= cols
    body = np.exp(-(((x - 0.5) / 0.42) ** 6 + ((y - 0.55) / 0.48) ** 6))
    lungs = sum(np.exp(-(((x - cx) / 0.15) ** 2 + ((y - 0.5) / 0.28) ** 2)) for cx in (0.32, 0.68))
    ribs = 0.08 * (np.sin(y * 60.0) > 0.7) * body
    img = 0.9 * body - 0.55 * lungs + ribs
    img += rng.normal(0.0, 0.02, img.shape).astype(np.float32)
    img = (img - img.min()) / max(float(img.max() - img.min()), 1e-6)
    return (img * (2**bits - 1)).astype(np.uint16)


def make_cr(
    patient: Patient = Patient(),
    *,
    rows: int = 512,
    cols: int = 512,
    seed: int = 1,
    study_uid: str | None = None,
    view: str = "PA",
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    when: dt.datetime | None = None,
) -> Dataset:
    """One CR chest image (CR Image IOD) with a window and pixel spacing."""
    when = when or dt.datetime(2026, 1, 2, 9, 30, 0)
    study_uid = study_uid or _uid("study", "cr", patient.patient_id, seed)
    series_uid = _uid("series", study_uid, "cr", seed)
    ds = _base(
        CR_IMAGE_STORAGE,
        _uid("sop", series_uid, 1),
        study_uid,
        series_uid,
        patient,
        "CR",
        1,
        1,
        when,
        f"ACC{seed:06d}",
        "CHEST PA",
    )
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientOrientation = list(DISPLAYED_FRONTAL)
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    pixels = _chest_phantom(rows, cols, seed, bits)
    if photometric == "MONOCHROME1":
        pixels = (2**bits - 1 - pixels).astype(np.uint16)
    _set_pixels_mono(ds, pixels, photometric, bits)
    ds.ImagerPixelSpacing = [0.143, 0.143]
    ds.PixelSpacing = [0.143, 0.143]
    ds.WindowCenter = 2 ** (bits - 1)
    ds.WindowWidth = 2**bits
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    return ds


def make_dx(
    patient: Patient = Patient(),
    *,
    rows: int = 512,
    cols: int = 512,
    seed: int = 2,
    study_uid: str | None = None,
    view: str = "PA",
    photometric: str = "MONOCHROME2",
    bits: int = 12,
    when: dt.datetime | None = None,
) -> Dataset:
    """One DX chest image (Digital X-Ray Image IOD, For Presentation)."""
    when = when or dt.datetime(2026, 1, 2, 10, 0, 0)
    study_uid = study_uid or _uid("study", "dx", patient.patient_id, seed)
    series_uid = _uid("series", study_uid, "dx", seed)
    ds = _base(
        DX_IMAGE_FOR_PRESENTATION,
        _uid("sop", series_uid, 1),
        study_uid,
        series_uid,
        patient,
        "DX",
        1,
        1,
        when,
        f"ACC{seed:06d}",
        "CHEST PA",
    )
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = view
    ds.PatientOrientation = list(DISPLAYED_FRONTAL)
    ds.ImageType = ["ORIGINAL", "PRIMARY", ""]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.PresentationLUTShape = "INVERSE" if photometric == "MONOCHROME1" else "IDENTITY"
    ds.AcquisitionDate = ds.StudyDate
    ds.AcquisitionTime = ds.StudyTime
    ds.ContentQualification = "RESEARCH"
    ds.DetectorType = "SCINTILLATOR"
    ds.PositionerType = "NONE"
    ds.ImagerPixelSpacing = [0.139, 0.139]
    ds.PixelSpacing = [0.139, 0.139]
    ds.PixelIntensityRelationship = "LIN"
    ds.PixelIntensityRelationshipSign = 1 if photometric == "MONOCHROME2" else -1
    ds.RescaleIntercept = 0
    ds.RescaleSlope = 1
    ds.RescaleType = "US"
    ds.LossyImageCompression = "00"
    ds.ImageLaterality = "U"
    ds.AcquisitionContextSequence = []
    view_code = Dataset()
    view_code.CodeValue, view_code.CodingSchemeDesignator = (
        ("399348003", "SCT") if view == "AP" else ("399214001", "SCT")
    )
    view_code.CodeMeaning = "antero-posterior" if view == "AP" else "postero-anterior"
    ds.ViewCodeSequence = [view_code]
    ds.AnatomicRegionSequence = [Dataset()]
    ds.AnatomicRegionSequence[0].CodeValue = "43799004"
    ds.AnatomicRegionSequence[0].CodingSchemeDesignator = "SCT"
    ds.AnatomicRegionSequence[0].CodeMeaning = "Chest"
    pixels = _chest_phantom(rows, cols, seed, bits)
    if photometric == "MONOCHROME1":
        pixels = (2**bits - 1 - pixels).astype(np.uint16)
    _set_pixels_mono(ds, pixels, photometric, bits)
    ds.WindowCenter = 2 ** (bits - 1)
    ds.WindowWidth = 2**bits
    return ds


def iter_ct_series(
    n: int,
    patient: Patient = Patient(),
    *,
    rows: int = 512,
    cols: int = 512,
    seed: int = 3,
    study_uid: str | None = None,
    when: dt.datetime | None = None,
) -> Iterator[Dataset]:
    """``n`` axial CT slices (CT Image IOD, 16-bit, HU via rescale), generated lazily."""
    when = when or dt.datetime(2026, 1, 2, 11, 0, 0)
    study_uid = study_uid or _uid("study", "ct", patient.patient_id, seed)
    series_uid = _uid("series", study_uid, "ct", seed)
    frame_of_ref = _uid("for", series_uid)
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:rows, 0:cols].astype(np.float32)
    r = np.hypot((y - rows / 2) / (rows / 2), (x - cols / 2) / (cols / 2))
    body = np.where(r < 0.85, 1040.0, 24.0)  # HU + 1024 (water-ish body, air outside)
    for i in range(n):
        ds = _base(
            CT_IMAGE_STORAGE,
            _uid("sop", series_uid, i + 1),
            study_uid,
            series_uid,
            patient,
            "CT",
            2,
            i + 1,
            when,
            f"ACC{seed:06d}",
            "CHEST 1.0 AX",
        )
        ds.BodyPartExamined = "CHEST"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.FrameOfReferenceUID = frame_of_ref
        ds.PositionReferenceIndicator = ""
        ds.PatientPosition = "HFS"
        ds.ImagePositionPatient = [-0.5 * cols * 0.7, -0.5 * rows * 0.7, -1.0 * i]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceThickness = 1.0
        ds.SliceLocation = -1.0 * i
        ds.PixelSpacing = [0.7, 0.7]
        ds.AcquisitionNumber = 1
        ds.KVP = 120
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 400
        noise = rng.normal(0.0, 12.0, (rows, cols)).astype(np.float32)
        lesion = 300.0 * (np.hypot(y - rows * 0.4, x - cols * (0.3 + 0.002 * i)) < 12)
        pixels = np.clip(body + noise + lesion, 0, 4095)
        _set_pixels_mono(ds, pixels, "MONOCHROME2", 12)
        yield ds


def write_files(datasets: Iterator[Dataset] | list[Dataset], folder: Path) -> list[Path]:
    """Write each dataset as a DICOM Part 10 file named by its SOP Instance UID."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for ds in datasets:
        path = folder / f"{ds.SOPInstanceUID}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def new_uid() -> str:
    """A fresh random UID (for tests that need distinct studies)."""
    return generate_uid()
