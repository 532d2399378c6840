"""The query parameters of rendered resources (PS3.18 8.3.5.1): ``viewport`` (with its
optional source region), ``window`` and ``quality``, parsed and bounded; Problem 400
naming the parameter for a malformed value. ``accept`` (8.3.3.1) is read by
:mod:`.wado_accept`, as on every resource. Unknown parameters (and ``annotation``,
``iccprofile``, ``charset``) are ignored, as the standard allows."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.datastructures import QueryParams

from dicom_node.http.problem import Problem

MAX_SIDE = 4096  # pixels per side of a rendering's viewport (thumbnails: 1024)
# PS3.18 8.3.5.1.4 function names, as PS3.3 C.11.2.1.3 VOI LUT Function values.
FUNCTIONS = {"linear": "LINEAR", "linear-exact": "LINEAR_EXACT", "sigmoid": "SIGMOID"}
_INT = re.compile(r"[0-9]{1,9}")
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]{1,12}(?:\.[0-9]{0,12})?|\.[0-9]{1,12})(?:[eE][+-]?[0-9]{1,3})?"
)


@dataclass(frozen=True)
class Rendering:
    """How to render: fit ``viewport`` (width, height); take only ``region`` (sx, sy, sw,
    sh; sw or sh None: to the image's edge; negative: flipped) of the image; ``window``
    (center, width, VOI LUT Function) instead of the image's VOI; JPEG ``quality``."""

    viewport: tuple[int, int] | None = None
    region: tuple[float, float, float | None, float | None] | None = None
    window: tuple[float, float, str] | None = None
    quality: int | None = None


def _bad(name: str, value: str, usage: str) -> Problem:
    return Problem(400, "Bad Request", f"{name} {value[:64]!r}: {usage}", parameter=name)


def _once(name: str, values: Sequence[str], usage: str) -> str | None:
    if len(values) > 1:
        raise Problem(
            400, "Bad Request", f"the {name} is given more than once: {usage}", parameter=name
        )
    return values[0] if values else None


def _decimal(text: str) -> float | None:
    """``text`` as a finite decimal number; None if it is not one."""
    return float(text) if _DECIMAL.fullmatch(text) else None


def viewport(
    values: Sequence[str], max_side: int = MAX_SIDE, region: bool = True, what: str = "a"
) -> tuple[tuple[int, int] | None, tuple[float, float, float | None, float | None] | None]:
    """The ``viewport`` parameter (``vw,vh``, or ``vw,vh,sx,sy,sw,sh`` where ``region``
    allows one, each of the last four possibly empty) as (width, height) and the source
    region; (None, None) if absent. Problem 400 unless vw and vh are 1 to ``max_side``,
    sx and sy at least 0 and sw and sh non-zero."""
    usage = f"{what} viewport is vw,vh: two whole numbers of pixels from 1 to {max_side}"
    if region:
        usage += " (then optionally ,sx,sy,sw,sh: a source region, sw and sh non-zero)"
    value = _once("viewport", values, usage)
    if value is None:
        return None, None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in ((2, 6) if region else (2,)):
        raise _bad("viewport", value, usage)
    if not all(_INT.fullmatch(p) for p in parts[:2]):
        raise _bad("viewport", value, usage)
    width, height = int(parts[0]), int(parts[1])
    if not (1 <= width <= max_side and 1 <= height <= max_side):
        raise _bad("viewport", value, usage)
    if len(parts) == 2:
        return (width, height), None
    numbers = [_decimal(p) if p else None for p in parts[2:]]
    if any(n is None and p for n, p in zip(numbers, parts[2:], strict=True)):
        raise _bad("viewport", value, usage)
    sx, sy, sw, sh = numbers
    if (sx or 0) < 0 or (sy or 0) < 0 or sw == 0 or sh == 0:
        raise _bad("viewport", value, usage)
    return (width, height), (sx or 0.0, sy or 0.0, sw, sh)


def window(values: Sequence[str]) -> tuple[float, float, str] | None:
    """The ``window`` parameter (``center,width[,function]``; the function ``linear``,
    ``linear-exact`` or ``sigmoid``, ``linear`` if omitted) as center, width and the VOI
    LUT Function; None if absent. Problem 400 unless the width is at least 1 (linear) or
    more than 0 (the others), as PS3.3 C.11.2.1.2 requires."""
    usage = "window is center,width,function: two decimal numbers and one of " + ", ".join(
        FUNCTIONS
    )
    value = _once("window", values, usage)
    if value is None:
        return None
    parts = [p.strip() for p in value.split(",")]
    if len(parts) not in (2, 3):
        raise _bad("window", value, usage)
    center, width = _decimal(parts[0]), _decimal(parts[1])
    function = FUNCTIONS.get(parts[2].lower() if len(parts) == 3 else "linear")
    if center is None or width is None or function is None:
        raise _bad("window", value, usage)
    if not (math.isfinite(center) and math.isfinite(width)):
        raise _bad("window", value, usage)
    if width < 1 if function == "LINEAR" else width <= 0:
        least = "at least 1" if function == "LINEAR" else "more than 0"
        raise _bad("window", value, f"the width of a {parts[-1]} window is {least}")
    return center, width, function


def quality(values: Sequence[str]) -> int | None:
    """The ``quality`` parameter: a whole number from 1 to 100 (None if absent)."""
    usage = "quality is a whole number from 1 to 100"
    value = _once("quality", values, usage)
    if value is None:
        return None
    if not _INT.fullmatch(value.strip()) or not 1 <= int(value) <= 100:
        raise _bad("quality", value, usage)
    return int(value)


def parse(params: QueryParams) -> Rendering:
    """The rendering asked for by a request's query parameters (a Starlette
    ``QueryParams``, read with ``getlist``)."""
    get = params.getlist
    size, region = viewport(get("viewport"))
    return Rendering(size, region, window(get("window")), quality(get("quality")))
