"""The public facade: ``write_results(sources, results, options) -> ResultObjects``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydicom.dataset import Dataset

from sr_writer import pmap
from sr_writer.codes import declare_schemes
from sr_writer.common import created_at, header
from sr_writer.errors import ResultWriteError
from sr_writer.findings_card import build_card
from sr_writer.heatmap_sc import build_heatmap, select
from sr_writer.inputs import ImageResult
from sr_writer.kos import build_kos
from sr_writer.options import WriteOptions
from sr_writer.sr import build_sr
from sr_writer.uids import ResultUIDs
from sr_writer.validate import check_results, check_sources

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ResultObjects:
    """Everything written for one model's results on one study.

    Attributes
    ----------
    sr : pydicom.dataset.Dataset
        The Comprehensive 3D SR (TID 1500).
    heatmaps : list of pydicom.dataset.Dataset
        Heatmap Secondary Captures, most probable finding first.
    card : pydicom.dataset.Dataset or None
        The findings card SC, unless turned off.
    kos : pydicom.dataset.Dataset or None
        The Key Object Selection, only when some finding is positive.
    pmaps : list of pydicom.dataset.Dataset
        Parametric Maps, when asked for.
    """

    sr: Dataset
    heatmaps: list[Dataset] = field(default_factory=list)
    card: Dataset | None = None
    kos: Dataset | None = None
    pmaps: list[Dataset] = field(default_factory=list)

    def all(self) -> list[Dataset]:
        """List every object in sending order.

        Returns
        -------
        list of pydicom.dataset.Dataset
            The SR, heatmaps, card, key object selection and parametric maps.
        """
        return [
            self.sr,
            *self.heatmaps,
            *([self.card] if self.card is not None else []),
            *([self.kos] if self.kos is not None else []),
            *self.pmaps,
        ]

    def kinds(self) -> list[tuple[str, Dataset]]:
        """List every object in sending order with its kind.

        Returns
        -------
        list of tuple of (str, pydicom.dataset.Dataset)
            As :meth:`all`, each paired with ``"sr"``, ``"heatmap"``, ``"card"``,
            ``"kos"`` or ``"pmap"``.
        """
        return [
            ("sr", self.sr),
            *(("heatmap", h) for h in self.heatmaps),
            *([("card", self.card)] if self.card is not None else []),
            *([("kos", self.kos)] if self.kos is not None else []),
            *(("pmap", p) for p in self.pmaps),
        ]


def write_results(
    sources: Sequence[Dataset],
    results: Sequence[ImageResult],
    options: WriteOptions | None = None,
) -> ResultObjects:
    """Build the TID 1500 SR, heatmap SCs, findings card, KOS and parametric maps.

    All inputs are checked first and no object is returned unless every one could be
    built. Same inputs and options give the same UIDs and content.

    Parameters
    ----------
    sources : Sequence[pydicom.dataset.Dataset]
        The analysed source datasets, with pixel data when heatmaps are wanted.
    results : Sequence[ImageResult]
        One model's per-image (per-frame) results on ``sources``.
    options : WriteOptions, optional
        What to write and how; the defaults when ``None``.

    Returns
    -------
    ResultObjects
        The objects, in sending order through :meth:`ResultObjects.all`.

    Raises
    ------
    ResultWriteError
        An input or a value that cannot be written, with a one-line reason; the same
        inputs fail the same way again.
    MemoryError, OSError
        A resource problem, which may pass.
    """
    options = options or WriteOptions()
    by_uid = check_sources(sources)
    check_results(results, by_uid)
    headers = {uid: header(ds) for uid, ds in by_uid.items()}
    model = results[0].model
    uids = ResultUIDs((r.sop_instance_uid for r in results), model)
    when = created_at(options)
    first = headers[results[0].sop_instance_uid]
    try:
        sr = build_sr(headers, results, options, uids, when)
        declare_schemes(sr)
        heatmaps = []
        for number, (result, label) in enumerate(select(results, options), start=1):
            heatmaps.append(
                build_heatmap(
                    by_uid[result.sop_instance_uid],
                    headers[result.sop_instance_uid],
                    result,
                    label,
                    options=options,
                    uids=uids,
                    instance_number=number,
                    when=when,
                )
            )
        card = None
        if options.findings_card:
            card = build_card(
                [(headers[r.sop_instance_uid], r.frame) for r in results],
                first,
                results,
                options=options,
                uids=uids,
                instance_number=len(heatmaps) + 1,
                when=when,
            )
        kos = build_kos(headers, results, options, uids, when) if options.kos else None
        if kos is not None:
            declare_schemes(kos)
        pmaps = [
            pmap.build_pmap(
                by_uid, request, options=options, uids=uids, instance_number=number, when=when
            )
            for number, request in enumerate(
                pmap.select(results, by_uid) if options.parametric_map else [], start=1
            )
        ]
    except (ResultWriteError, MemoryError, OSError):
        raise  # already named, or a resource problem that may pass
    except Exception as exc:  # pure computation on the inputs: the same inputs fail again
        raise ResultWriteError(
            f"study {first.StudyInstanceUID}, model {model.name} {model.version}: "
            f"cannot build result objects: {exc}"
        ) from exc
    log.info(
        "results written study=%s model=%s %s sr=%s heatmaps=%d card=%s kos=%s pmaps=%d",
        first.StudyInstanceUID,
        model.name,
        model.version,
        sr.SOPInstanceUID,
        len(heatmaps),
        card is not None,
        kos is not None,
        len(pmaps),
    )
    return ResultObjects(sr=sr, heatmaps=heatmaps, card=card, kos=kos, pmaps=pmaps)
