"""The 18 torchxrayvision-style chest X-ray labels and their codes for the SR.

Codes marked (pydicom) were checked against the DICOM concept dictionary that pydicom
ships (PS3.16 content). The other SNOMED CT codes (46621007 Atelectasis, 95436008 Lung
consolidation, 87433001 Pulmonary emphysema, 233604007 Pneumonia, 125605004 Fracture of
bone) were checked against several independent public SNOMED-coded sources. Cardiomegaly
uses 287272002 as DICOM's own context groups do (PS3.16 CID 12248, pydicom's
``codes.SCT.Cardiomegaly``): the SR is a DICOM object and viewers map DICOM's codes.
Labels with no concept in DICOM PS3.16 (pydicom's concept dictionary has no SCT or DCM
code for pleural thickening, hernia, lung lesion or enlarged cardiomediastinum; xrv's
generic "Hernia" is not only hiatal hernia 84089009) use the private ``99DCMNODE``
scheme, which the SR declares in its Coding Scheme Identification Sequence
(``sr_writer.codes.declare_schemes``).
"""

from __future__ import annotations

from ai.manifest import CodeSpec

PRIVATE_SCHEME = "99DCMNODE"

XRV_LABELS: tuple[str, ...] = (
    "Atelectasis",
    "Consolidation",
    "Infiltration",
    "Pneumothorax",
    "Edema",
    "Emphysema",
    "Fibrosis",
    "Effusion",
    "Pneumonia",
    "Pleural_Thickening",
    "Cardiomegaly",
    "Nodule",
    "Mass",
    "Hernia",
    "Lung Lesion",
    "Fracture",
    "Lung Opacity",
    "Enlarged Cardiomediastinum",
)

LABEL_CODES: dict[str, CodeSpec] = {
    "Atelectasis": CodeSpec(value="46621007", scheme="SCT", meaning="Atelectasis"),
    "Consolidation": CodeSpec(value="95436008", scheme="SCT", meaning="Lung consolidation"),
    "Infiltration": CodeSpec(value="112121", scheme="DCM", meaning="Infiltrate"),  # (pydicom)
    "Pneumothorax": CodeSpec(value="36118008", scheme="SCT", meaning="Pneumothorax"),  # (pydicom)
    "Edema": CodeSpec(value="19242006", scheme="SCT", meaning="Pulmonary edema"),  # (pydicom)
    "Emphysema": CodeSpec(value="87433001", scheme="SCT", meaning="Pulmonary emphysema"),
    "Fibrosis": CodeSpec(value="112674009", scheme="SCT", meaning="Fibrosis"),  # (pydicom)
    "Effusion": CodeSpec(value="60046008", scheme="SCT", meaning="Pleural effusion"),  # (pydicom)
    "Pneumonia": CodeSpec(value="233604007", scheme="SCT", meaning="Pneumonia"),
    "Pleural_Thickening": CodeSpec(
        value="PLEURAL_THICKENING", scheme=PRIVATE_SCHEME, meaning="Pleural thickening"
    ),
    "Cardiomegaly": CodeSpec(value="287272002", scheme="SCT", meaning="Cardiomegaly"),
    "Nodule": CodeSpec(value="27925004", scheme="SCT", meaning="Nodule"),  # (pydicom)
    "Mass": CodeSpec(value="4147007", scheme="SCT", meaning="Mass"),  # (pydicom)
    "Hernia": CodeSpec(value="HERNIA", scheme=PRIVATE_SCHEME, meaning="Hernia"),
    "Lung Lesion": CodeSpec(value="LUNG_LESION", scheme=PRIVATE_SCHEME, meaning="Lung lesion"),
    "Fracture": CodeSpec(value="125605004", scheme="SCT", meaning="Fracture of bone"),
    "Lung Opacity": CodeSpec(value="112001", scheme="DCM", meaning="Opacity"),  # (pydicom)
    "Enlarged Cardiomediastinum": CodeSpec(
        value="ENLARGED_CARDIOMEDIASTINUM",
        scheme=PRIVATE_SCHEME,
        meaning="Enlarged cardiomediastinum",
    ),
}


def code_for(label: str) -> CodeSpec:
    """Return the code of an xrv label; an unknown label gets a private ``99DCMNODE`` one."""
    if label in LABEL_CODES:
        return LABEL_CODES[label]
    value = "".join(ch if ch.isalnum() else "_" for ch in label.upper())[:16] or "UNKNOWN"
    return CodeSpec(value=value, scheme=PRIVATE_SCHEME, meaning=label.replace("_", " "))
