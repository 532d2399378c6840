"""The TID 1500 Measurement Report (Comprehensive 3D SR) built with highdicom."""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence

import highdicom as hd
from highdicom.sr import (
    AlgorithmIdentification,
    Comprehensive3DSR,
    Measurement,
    MeasurementReport,
    MeasurementsAndQualitativeEvaluations,
    ObservationContext,
    PlanarROIMeasurementsAndQualitativeEvaluations,
    QualitativeEvaluation,
    SourceImageForMeasurementGroup,
    TrackingIdentifier,
)
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes

from sr_writer import codes as c
from sr_writer.common import (
    CHARACTER_SET,
    append_algorithm_equipment,
    copy_extra_patient_study,
    declare_scheme,
    device_observer,
    series_description,
    set_times,
    settle_character_set,
)
from sr_writer.inputs import ImageResult, LabelResult, ModelIdentity
from sr_writer.options import DEMO_NOTICE, WriteOptions
from sr_writer.source_values import library_view
from sr_writer.spatial import image_area, region_group, whole_image
from sr_writer.uids import ResultUIDs

log = logging.getLogger(__name__)


def _algorithm(model: ModelIdentity, threshold: float | None) -> AlgorithmIdentification:
    parameters = [f"threshold={threshold:g}"] if threshold is not None else []
    if model.demo:  # shown with the algorithm by every SR viewer (TID 4019 parameter)
        parameters.append(DEMO_NOTICE)
    return AlgorithmIdentification(
        name=model.name[:64],
        version=model.version[:64],
        parameters=parameters or None,
        manufacturer=model.manufacturer[:64],
    )


def _add_demo_notice(content: MeasurementReport, model: ModelIdentity) -> None:
    """Build the demo notice: a TID 1500 "Qualitative Evaluations" container.

    At the report's root, it holds a TEXT comment that says the results come from a
    non-clinical demo model.
    """
    comment = hd.sr.TextContentItem(
        name=codes.DCM.Comment,
        value=f"{DEMO_NOTICE}. Intended use: {model.intended_use}"[:1024],
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container = hd.sr.ContainerContentItem(
        name=c.QUALITATIVE_EVALUATIONS,
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    container.ContentSequence = hd.sr.ContentSequence([comment])
    content[0].ContentSequence.append(container)


def _source_item(header: Dataset, frame: int | None) -> SourceImageForMeasurementGroup:
    return SourceImageForMeasurementGroup.from_source_image(
        header, referenced_frame_numbers=[frame] if frame is not None else None
    )


def _image_label(index: int, frame: int | None, count: int) -> str:
    """Which analysed image a finding is on, for its tracking identifier (empty for one)."""
    if count == 1:
        return ""
    suffix = f" frame {frame}" if frame is not None else ""
    return f" (image {index}{suffix})"


def _label_group(
    label: LabelResult,
    result: ImageResult,
    header: Dataset,
    where: str,
    uids: ResultUIDs,
) -> MeasurementsAndQualitativeEvaluations:
    finding = c.concept(label.code)
    tracking = TrackingIdentifier(
        uid=uids.tracking(result.sop_instance_uid, result.frame, label.name),
        identifier=f"{label.code.meaning}{where}"[:64],
    )
    probability = Measurement(
        name=c.CERTAINTY_OF_FINDING,
        value=float(label.probability),
        unit=c.UNIT_ONE,
        referenced_coordinates=[image_area(header, result.frame)],
    )
    decision = QualitativeEvaluation(name=finding, value=c.PRESENT if label.positive else c.ABSENT)
    return MeasurementsAndQualitativeEvaluations(
        tracking_identifier=tracking,
        finding_type=finding,
        algorithm_id=_algorithm(result.model, label.threshold),
        measurements=[probability],
        qualitative_evaluations=[decision],
        source_images=[_source_item(header, result.frame)],
    )


def _no_finding_group(
    result: ImageResult, header: Dataset, where: str, uids: ResultUIDs
) -> PlanarROIMeasurementsAndQualitativeEvaluations:
    """Build the statement written when only positives are kept and there are none.

    A qualitative evaluation of the whole analysed image (TID 1410, so that OHIF, which
    throws on groups without coordinates, can show it).
    """
    names = ", ".join(label.name for label in result.labels)
    group = PlanarROIMeasurementsAndQualitativeEvaluations(
        tracking_identifier=TrackingIdentifier(
            uid=uids.tracking(result.sop_instance_uid, result.frame, "__no_finding__"),
            identifier=f"No finding above threshold{where}"[:64],
        ),
        referenced_region=whole_image(header, result.frame),
        algorithm_id=_algorithm(result.model, None),
        qualitative_evaluations=[
            QualitativeEvaluation(name=c.CAD_PROCESSING_SUMMARY, value=c.WITHOUT_FINDINGS)
        ],
    )
    comment = hd.sr.TextContentItem(
        name=codes.DCM.Comment,
        value=f"No finding above threshold. Labels evaluated: {names}"[:1024],
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS,
    )
    group[0].ContentSequence.append(comment)
    return group


def build_sr(
    headers: dict[str, Dataset],
    results: Sequence[ImageResult],
    options: WriteOptions,
    uids: ResultUIDs,
    when: dt.datetime,
) -> Dataset:
    """Build the Comprehensive 3D SR for ``results`` (already validated)."""
    model = results[0].model
    observer = device_observer(model)
    groups: list[
        MeasurementsAndQualitativeEvaluations | PlanarROIMeasurementsAndQualitativeEvaluations
    ] = []
    for index, result in enumerate(results, start=1):
        header = headers[result.sop_instance_uid]
        where = _image_label(index, result.frame, len(results))
        labels = [label for label in result.labels if options.sr_labels == "all" or label.positive]
        for label in labels:
            groups.append(_label_group(label, result, header, where, uids))
        if not labels:
            groups.append(_no_finding_group(result, header, where, uids))
    # Then, for each positive finding, where it is (TID 1410 planar ROI).
    for index, result in enumerate(results, start=1):
        header = headers[result.sop_instance_uid]
        where = _image_label(index, result.frame, len(results))
        for label in result.labels:
            group = region_group(
                label, result, header, where, uids, _algorithm(result.model, label.threshold)
            )
            if group is not None:
                groups.append(group)

    first = headers[results[0].sop_instance_uid]
    modality = str(first.Modality)
    referenced = list({uid: headers[uid] for uid in (r.sop_instance_uid for r in results)}.values())

    def report(library: list[Dataset] | None) -> MeasurementReport:
        return MeasurementReport(
            observation_context=ObservationContext(observer_device_context=observer),
            procedure_reported=c.procedure_for(modality, options.procedure_code),
            imaging_measurements=groups,
            title=c.IMAGING_MEASUREMENT_REPORT,
            referenced_images=library,
        )

    # Sources without full geometry get generic library entries (source_values).
    content = report([library_view(h) for h in referenced])
    if model.demo:
        _add_demo_notice(content, model)
    sr = Comprehensive3DSR(
        evidence=referenced,
        content=content,
        series_instance_uid=uids.sr_series,
        series_number=options.sr_series_number,
        sop_instance_uid=uids.sr_instance,
        instance_number=1,
        manufacturer=options.manufacturer,
        is_complete=True,
        is_final=False,
        is_verified=False,
        institution_name=options.institution_name,
        series_description=series_description(model, "report"),
        content_date=when.date(),
        content_time=when.time(),
        series_date=when.date(),
        series_time=when.time(),
        specific_character_set=CHARACTER_SET,
        software_versions=options.software_version,
    )
    set_times(sr, when, ("InstanceCreationDate", "InstanceCreationTime"))
    copy_extra_patient_study(sr, first)
    append_algorithm_equipment(sr, model, when)
    if model.demo:
        declare_scheme(sr, c.UMLS_SCHEME)
    settle_character_set(sr)
    log.info(
        "SR built study=%s model=%s %s groups=%d sop=%s",
        first.StudyInstanceUID,
        model.name,
        model.version,
        len(groups),
        sr.SOPInstanceUID,
    )
    return sr


__all__ = ["build_sr"]
