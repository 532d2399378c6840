"""Values copied from a source image, made valid for the result objects.

Results copy the source's Patient and Study attributes (and a few image attributes such
as Pixel Spacing and Patient Orientation) so that they land in the same study and line
up with the source. Real-world sources carry invalid values (a zero Pixel Spacing, a
Patient Age of ``"22Y "``, a 64-character Study ID, a hexadecimal "UID"); copied as they
are, they make the result invalid too. :func:`sanitize` fixes what has one obvious
fix, empties type 2 attributes and drops the others. Only what the result must carry
unchanged to join the study and to reference its source (Study/Series/SOP Instance UID,
SOP Class UID, Patient ID) is kept even when wrong.
"""

from __future__ import annotations

import copy
import logging
import math
import re
from collections.abc import Iterable

from pydicom.dataset import Dataset
from pydicom.valuerep import validate_value

log = logging.getLogger(__name__)

# Kept exactly as the source has them, valid or not.
CARRIED = frozenset(
    {
        "SOPClassUID",
        "SOPInstanceUID",
        "StudyInstanceUID",
        "SeriesInstanceUID",
        "PatientID",
        "SpecificCharacterSet",
        "Modality",
        "Rows",
        "Columns",
        "NumberOfFrames",
        "SamplesPerPixel",
        "PixelRepresentation",
    }
)
# Type 2 in the result's Patient/Study modules: emptied, never removed.
TYPE2 = frozenset(
    {
        "PatientName",
        "PatientBirthDate",
        "PatientSex",
        "AccessionNumber",
        "StudyID",
        "StudyDate",
        "StudyTime",
        "ReferringPhysicianName",
    }
)
_RAISE = 2  # pydicom's config.RAISE
# VRs whose values are character strings
TEXT_VRS = frozenset(
    {
        "AE",
        "AS",
        "CS",
        "DA",
        "DS",
        "DT",
        "IS",
        "LO",
        "LT",
        "PN",
        "SH",
        "ST",
        "TM",
        "UC",
        "UI",
        "UR",
        "UT",
    }
)
_ORIENTATION = re.compile(r"^[APLRHF]{1,3}$")
_AXES = {"L": 0, "R": 0, "A": 1, "P": 1, "H": 2, "F": 2}
_AGE = re.compile(r"^\s*0*(\d{1,3})\s*([DWMY])\s*$")


def _values(element_value: object) -> list[object]:
    if isinstance(element_value, str | bytes) or not isinstance(element_value, Iterable):
        return [element_value]
    return list(element_value)


def _positive_numbers(value: object, count: int) -> bool:
    try:
        numbers = [float(v) for v in _values(value)]
    except (TypeError, ValueError):
        return False
    return len(numbers) == count and all(math.isfinite(n) and n > 0 for n in numbers)


def _finite_numbers(value: object, count: int) -> bool:
    try:
        numbers = [float(v) for v in _values(value)]
    except (TypeError, ValueError):
        return False
    return len(numbers) == count and all(math.isfinite(n) for n in numbers)


def valid_orientation(value: object) -> tuple[str, str] | None:
    """Parse a Patient Orientation pair (PS3.3 C.7.6.1.1.1); None if ``value`` is not one."""
    parts = [str(v).strip() for v in _values(value)] if value not in (None, "") else []
    if len(parts) != 2 or not all(_ORIENTATION.match(p) for p in parts):
        return None
    axes = _AXES
    for part in parts:  # no axis twice within one value (e.g. "LR")
        if len({axes[c] for c in part}) != len(part):
            return None
    if axes[parts[0][0]] == axes[parts[1][0]]:  # rows and columns along the same axis
        return None
    return parts[0], parts[1]


# Checks beyond the VR: keyword -> (is the value acceptable?, why not).
_SEMANTIC = {
    "PixelSpacing": (lambda v: _positive_numbers(v, 2), "needs two values > 0"),
    "ImagerPixelSpacing": (lambda v: _positive_numbers(v, 2), "needs two values > 0"),
    "SliceThickness": (lambda v: _positive_numbers(v, 1), "needs a value > 0"),
    "PatientSize": (lambda v: _positive_numbers(v, 1), "needs a value > 0"),
    "PatientWeight": (lambda v: _positive_numbers(v, 1), "needs a value > 0"),
    "ImageOrientationPatient": (lambda v: _finite_numbers(v, 6), "needs six numbers"),
    "ImagePositionPatient": (lambda v: _finite_numbers(v, 3), "needs three numbers"),
    "PatientOrientation": (
        lambda v: valid_orientation(v) is not None,
        "is not a pair of orientation letters",
    ),
    "Laterality": (lambda v: str(v) in ("R", "L"), "is not R or L"),
    "PatientSex": (lambda v: str(v) in ("M", "F", "O"), "is not M, F or O"),
}


def _fix_age(value: str) -> str | None:
    """``"22Y "`` -> ``"022Y"``; None when ``value`` is no age at all."""
    m = _AGE.match(str(value))
    return f"{int(m.group(1)):03d}{m.group(2)}" if m else None


def _vr_problem(vr: str, value: object) -> str | None:
    """Why ``value`` is not valid for ``vr`` (pydicom's validators), or None."""
    if vr == "SQ":
        for item in value or []:  # type: ignore[union-attr]
            for element in item:
                problem = _vr_problem(element.VR, element.value)
                if problem:
                    return f"{element.keyword or element.tag}: {problem}"
        return None
    if value in (None, ""):
        return None
    for single in _values(value):
        if vr in TEXT_VRS and single is not None:
            single = str(single)  # DSfloat, IS, PersonName, UID: validate their text
        try:
            validate_value(vr, single, _RAISE)
        except (ValueError, TypeError) as exc:
            return str(exc).split(" Please see")[0]
    return None


def sanitize(ds: Dataset) -> list[str]:
    """Make the copied attributes of ``ds`` (a header copy) valid in place.

    Returns one note per value fixed, emptied or dropped (for the log).
    """
    notes: list[str] = []
    for element in list(ds):
        keyword = element.keyword
        if not keyword or keyword in CARRIED or element.value in (None, ""):
            continue
        if keyword == "PatientAge":
            fixed = _fix_age(element.value)
            if fixed is not None:
                if fixed != element.value:
                    notes.append(f"PatientAge {element.value!r} written as {fixed!r}")
                    ds.PatientAge = fixed
                continue
        problem = _vr_problem(element.VR, element.value)
        if problem is None and keyword in _SEMANTIC:
            ok, why = _SEMANTIC[keyword]
            problem = None if ok(element.value) else f"{element.value!r} {why}"
        if problem is None:
            continue
        if keyword in TYPE2:
            ds[keyword].value = ""
            notes.append(f"{keyword} emptied: {problem}")
        else:
            del ds[keyword]
            notes.append(f"{keyword} dropped: {problem}")
    return notes


def sanitized_copy(header: Dataset) -> Dataset:
    """Return a copy of ``header`` with :func:`sanitize` applied; log what changed.

    A deep copy: the elements of a header may be the source dataset's own.
    """
    out = copy.deepcopy(header)
    notes = sanitize(out)
    if notes:
        log.info(
            "source %s: invalid values not copied into results: %s",
            header.get("SOPInstanceUID", "?"),
            "; ".join(notes),
        )
    return out


# Body Part Examined defined terms of unpaired structures (PS3.16 Annex L, Laterality
# "U"; the same list dicom3tools checks Laterality against): no Laterality for these.
UNPAIRED_BODY_PARTS = frozenset(
    {
        "ABDOMEN",
        "ABDOMENPELVIS",
        "AORTA",
        "BACK",
        "BLADDER",
        "BRAIN",
        "CEREBELLUM",
        "CERVIX",
        "CHEST",
        "CHESTABDOMEN",
        "CHESTABDPELVIS",
        "CIRCLEOFWILLIS",
        "COCCYX",
        "COLON",
        "CORONARYARTERY",
        "CSPINE",
        "CTSPINE",
        "DUODENUM",
        "ESOPHAGUS",
        "FACE",
        "GALLBLADDER",
        "HEAD",
        "HEADNECK",
        "HEART",
        "ILEUM",
        "ILIUM",
        "JAW",
        "JEJUNUM",
        "LARYNX",
        "LIVER",
        "LSPINE",
        "LSSPINE",
        "MAXILLA",
        "MEDIASTINUM",
        "MOUTH",
        "NECK",
        "NECKCHEST",
        "NECKCHESTABDOMEN",
        "NECKCHESTABDPELV",
        "NOSE",
        "PANCREAS",
        "PELVIS",
        "PENIS",
        "PHARYNX",
        "PROSTATE",
        "RECTUM",
        "SCALP",
        "SKULL",
        "SPINE",
        "SPLEEN",
        "SSPINE",
        "STERNUM",
        "STOMACH",
        "THYMUS",
        "THYROID",
        "TLSPINE",
        "TONGUE",
        "TRACHEA",
        "TSPINE",
        "URETER",
        "URETHRA",
        "UTERUS",
        "VAGINA",
        "VULVA",
        "WHOLEBODY",
    }
)

# What highdicom's Image Library entry needs for each kind of image (TID 1602-1604).
PROJECTION = ("CR", "DX", "IO", "MG", "PX", "RF", "RG", "XA")
CROSS_SECTIONAL = ("CT", "MR", "PT")
_NEEDS = {
    "projection": ("PatientOrientation", "ImagerPixelSpacing"),
    "cross": ("PixelSpacing", "ImageOrientationPatient", "ImagePositionPatient", "SliceThickness"),
}


def library_view(header: Dataset) -> Dataset:
    """Return the dataset to hand highdicom for this image's Image Library entry.

    highdicom writes modality-specific geometry descriptors (TID 1603 for radiographs,
    TID 1604 for slices) and fails when one is missing; they are optional in the
    template. A source without all of them gets the generic entry (modality code from
    the SOP Class, frame of reference, rows, columns) instead of no library at all.
    """
    modality = str(header.get("Modality", "")).upper()
    kind = (
        "projection" if modality in PROJECTION else "cross" if modality in CROSS_SECTIONAL else None
    )
    if kind is None or all(header.get(k) not in (None, "") for k in _NEEDS[kind]):
        return header
    view = copy.deepcopy(header)
    view.Modality = "OT"  # only read by highdicom to choose the descriptor template
    return view
