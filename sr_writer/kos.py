"""Key Object Selection document flagging the source images with positive findings.

Many PACS show the images a KOS references as "key images". Title (113000, DCM,
"Of Interest") from CID 7010 (Key Object Selection Document Title): the generic
"these deserve a look" title (the other titles name a purpose: teaching, surgery,
quality issue, rejection...). Only written when some finding is positive.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

from highdicom.ko import KeyObjectSelection, KeyObjectSelectionDocument
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from sr_writer.common import (
    CHARACTER_SET,
    append_algorithm_equipment,
    copy_extra_patient_study,
    device_observer,
    series_description,
    set_times,
    settle_character_set,
)
from sr_writer.inputs import ImageResult
from sr_writer.options import DEMO_NOTICE, WriteOptions
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)

OF_INTEREST = codes.DCM.OfInterest  # (113000, DCM, "Of Interest"), CID 7010


def _description(results: Sequence[ImageResult]) -> str:
    """Key Object Description (TEXT, <= 1024 chars): the positive findings."""
    best: dict[str, float] = {}
    for result in results:
        for label in result.labels:
            if label.positive:
                meaning = label.code.meaning
                best[meaning] = max(best.get(meaning, 0.0), label.probability)
    found = ", ".join(f"{name} ({p:.2f})" for name, p in best.items())
    model = results[0].model
    notice = f"{DEMO_NOTICE}. " if model.demo else ""
    return f"{notice}AI result ({model.name} {model.version}), positive: {found}"[:1024]


def build_kos(
    headers: dict[str, Dataset],
    results: Sequence[ImageResult],
    options: WriteOptions,
    uids: ResultUIDs,
    when: dt.datetime,
) -> Dataset | None:
    """Build the KOS referencing each source image with a positive label (None if none)."""
    flagged = list(
        {
            r.sop_instance_uid: headers[r.sop_instance_uid]
            for r in results
            if any(label.positive for label in r.labels)
        }.values()
    )
    if not flagged:
        return None
    model = results[0].model
    observer = device_observer(model)
    content = KeyObjectSelection(
        document_title=OF_INTEREST,
        referenced_objects=flagged,
        observer_device_context=observer,
        description=_description(results),
    )
    kos = KeyObjectSelectionDocument(
        evidence=flagged,
        content=content,
        series_instance_uid=uids.kos_series,
        series_number=options.kos_series_number,
        sop_instance_uid=uids.kos_instance,
        instance_number=1,
        manufacturer=options.manufacturer,
        institution_name=options.institution_name,
        # Not the source's (highdicom copies it, and refuses ISO 2022's empty first
        # value); settle_character_set then picks the narrowest that holds the text.
        specific_character_set=CHARACTER_SET,
    )
    kos.SeriesDescription = series_description(model, "key images")
    set_times(
        kos,
        when,
        ("ContentDate", "ContentTime"),
        ("SeriesDate", "SeriesTime"),
        ("InstanceCreationDate", "InstanceCreationTime"),
    )
    copy_extra_patient_study(kos, flagged[0])
    append_algorithm_equipment(kos, model, when)
    settle_character_set(kos)
    log.info(
        "KOS built study=%s model=%s %s images=%d sop=%s",
        flagged[0].StudyInstanceUID,
        model.name,
        model.version,
        len(flagged),
        kos.SOPInstanceUID,
    )
    return kos


__all__ = ["OF_INTEREST", "build_kos"]
