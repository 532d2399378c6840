"""Coded concepts the writers use (DCM, SCT, LOINC, UCUM, 99IHE).

Also the declaration of every other coding scheme a result uses.

Every standard code here was checked against the DICOM content mapping resource as
shipped in pydicom's concept dictionary (the context group is named where it matters).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from highdicom.sr import CodedConcept
from pydicom.dataset import Dataset
from pydicom.sequence import Sequence as DicomSequence

from sr_writer.inputs import Code

# TID 1500 root title (CID 7021).
IMAGING_MEASUREMENT_REPORT = CodedConcept("126000", "DCM", "Imaging Measurement Report")

# The probability of a finding: "Certainty of Finding" (CID 6048, CAD operating point
# axis label), a NUM with UCUM unit "1" (dimensionless, 0..1).
CERTAINTY_OF_FINDING = CodedConcept("111012", "DCM", "Certainty of Finding")
UNIT_ONE = CodedConcept("1", "UCUM", "no units")

# The decision at the model's threshold: Qualitative Evaluation, value from CID 241.
PRESENT = CodedConcept("52101004", "SCT", "Present")
ABSENT = CodedConcept("272519000", "SCT", "Absent")
FINDING = CodedConcept("121071", "DCM", "Finding")

# Statement used when only positives are written and there are none: the CAD
# processing summary (CID 6047) "all algorithms succeeded; without findings".
CAD_PROCESSING_SUMMARY = CodedConcept("111017", "DCM", "CAD Processing and Findings Summary")
WITHOUT_FINDINGS = CodedConcept("111241", "DCM", "All algorithms succeeded; without findings")

# TID 1500 root "Qualitative Evaluations" container (CODE/TEXT children). UMLS is not
# one of the schemes a reader knows without a declaration, so it is declared.
QUALITATIVE_EVALUATIONS = CodedConcept("C0034375", "UMLS", "Qualitative Evaluations")
UMLS_SCHEME = (
    "UMLS",
    "2.16.840.1.113883.6.86",
    "Unified Medical Language System",
    "National Library of Medicine",
)

# Purpose of reference of the source image of a derived SC (CID 7202).
SOURCE_IMAGE_FOR_PROCESSING = CodedConcept(
    "121322", "DCM", "Source image for image processing operation"
)

# IHE AIR: Contributing Equipment item for the algorithm.
PROCESSING_ALGORITHM = CodedConcept("Newcode1", "99IHE", "Processing Algorithm")

# Procedure Reported (CID 100, Quantitative Diagnostic Imaging Procedures) by modality.
# CID 100 has no chest-specific LOINC codes; LN 43468-8 is "XR unspecified body
# region" (not "XR chest"), so the modality-level codes are used and body part is left
# to the source images. Override with WriteOptions.procedure_code.
IMAGING_PROCEDURE = CodedConcept("363679005", "SCT", "Imaging procedure")
PROCEDURE_BY_MODALITY: dict[str, CodedConcept] = {
    "CR": CodedConcept("43468-8", "LN", "XR unspecified body region"),
    "DX": CodedConcept("43468-8", "LN", "XR unspecified body region"),
    "CT": CodedConcept("25045-6", "LN", "CT unspecified body region"),
    "MR": CodedConcept("25056-3", "LN", "MRI unspecified body region"),
    "NM": CodedConcept("49118-3", "LN", "NM unspecified body region"),
    "PT": CodedConcept("44136-0", "LN", "PET unspecified body region"),
}

# Finding codes for common chest labels, for model manifests (verified in pydicom's
# DICOM concept dictionary; the context group follows the code).
FINDINGS: dict[str, Code] = {
    "pneumothorax": Code("36118008", "SCT", "Pneumothorax"),  # CID 6102
    "pleural_effusion": Code("60046008", "SCT", "Pleural effusion"),  # CID 8134
    "nodule": Code("27925004", "SCT", "Nodule"),  # CID 6102
    "pulmonary_edema": Code("19242006", "SCT", "Pulmonary edema"),  # CID 3700
    "infiltrate": Code("112121", "DCM", "Infiltrate"),  # CID 6102
    "opacity": Code("112001", "DCM", "Opacity"),  # CID 6102
    "cardiomegaly": Code("287272002", "SCT", "Cardiomegaly"),  # CID 12248
}


def concept(code: Code) -> CodedConcept:
    """Return the highdicom CodedConcept for an input ``Code``."""
    return CodedConcept(code.value, code.scheme, code.meaning)


def procedure_for(modality: str, override: tuple[str, str, str] | None) -> CodedConcept:
    """Return the Procedure Reported code for an exam of ``modality``."""
    if override is not None:
        return CodedConcept(*override)
    return PROCEDURE_BY_MODALITY.get(modality.upper(), IMAGING_PROCEDURE)


# Designators defined in PS3.16 Table 8-1 that results may carry (highdicom writes
# RFC5646 for the language): never declared. Private ones ("99...") always are.
STANDARD_SCHEMES = frozenset(
    {
        "DCM",
        "SCT",
        "SRT",
        "LN",
        "UCUM",
        "RFC5646",
        "NCIt",
        "FMA",
        "RADLEX",
        "UMLS",
        "ISO639_1",
        "ISO639_2",
        "ISO3166_1",
    }
)
# Names of the private schemes this project writes.
SCHEME_NAMES = {
    "99DCMNODE": (
        "dicom-node private codes (findings without a PS3.16 code)",
        "dicom-node project",
    ),
    "99IHE": ("IHE Radiology Technical Framework codes", "IHE"),
}


def _designators(items: Iterable[Dataset]) -> Iterator[str]:
    for item in items:
        for element in item:
            if element.keyword == "CodingSchemeDesignator":
                yield str(element.value)
            elif element.VR == "SQ" and element.keyword != "CodingSchemeIdentificationSequence":
                yield from _designators(element.value)


def declare_schemes(ds: Dataset) -> None:
    """Add a Coding Scheme Identification item for every non-standard scheme ``ds`` uses.

    PS3.3 C.12.1.1.2: schemes other than the DICOM-defined ones are declared.
    """
    declared = [item for item in ds.get("CodingSchemeIdentificationSequence", [])]
    known = {str(item.CodingSchemeDesignator) for item in declared}
    for designator in sorted(set(_designators([ds])) - known - STANDARD_SCHEMES):
        item = Dataset()
        item.CodingSchemeDesignator = designator
        name, organization = SCHEME_NAMES.get(designator, (designator, None))
        item.CodingSchemeName = name
        if organization:
            item.CodingSchemeResponsibleOrganization = organization
        declared.append(item)
    if declared:
        ds.CodingSchemeIdentificationSequence = DicomSequence(declared)
