"""Hands ``ai`` results to ``sr_writer``: the two packages mirror one contract but may not
import each other, so the application converts between them."""

from __future__ import annotations

from collections.abc import Iterable

import ai.types as a
import sr_writer.inputs as w


def _code(code: a.Code | None) -> w.Code | None:
    return None if code is None else w.Code(code.value, code.scheme, code.meaning)


def model_identity(m: a.ModelIdentity) -> w.ModelIdentity:
    """The writer's copy of a model's identity."""
    return w.ModelIdentity(
        name=m.name,
        version=m.version,
        manufacturer=m.manufacturer,
        device_uid=m.device_uid,
        intended_use=m.intended_use,
        demo=m.demo,
    )


def image_results(results: Iterable[a.ImageResult]) -> list[w.ImageResult]:
    """The writer's copies of the runtime's per-image results (heatmaps are shared).

    Raises ValueError or TypeError, naming the field, for a result the writer's value
    objects refuse (e.g. a label without a code).
    """
    return [
        w.ImageResult(
            sop_instance_uid=r.sop_instance_uid,
            frame=r.frame,
            model=model_identity(r.model),
            labels=tuple(
                w.LabelResult(
                    name=lab.name,
                    code=_code(lab.code),
                    probability=float(lab.probability),
                    threshold=float(lab.threshold),
                    positive=bool(lab.positive),
                    heatmap=lab.heatmap,
                )
                for lab in r.labels
            ),
        )
        for r in results
    ]
