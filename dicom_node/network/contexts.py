"""Cheap per-association copies of the supported presentation contexts (guarded tweak).

pynetdicom's association server gives every new association a ``copy.deepcopy`` of the
AE's supported presentation contexts. The node supports every storage SOP class with
every transfer syntax (~170 contexts of 45 transfer syntaxes), and the generic deepcopy
of those costs tens of milliseconds of CPU per association (figures: docs/receive.md,
``benchmarks/receive.py``), during which the node holds the GIL and the peer waits. A
context holds only immutable values (ints, flags, UIDs) and a list of UIDs, so
:func:`install` gives ``PresentationContext`` a ``__deepcopy__`` that copies its
attributes' values and lists (a fresh list per copy, the UIDs shared); any other value
is deep-copied as before. Not applied if pynetdicom's class already defines one.
"""

from __future__ import annotations

import copy
from typing import Any

_IMMUTABLE = (str, int, float, type(None))


def _deepcopy_context(self: Any, memo: dict[int, Any]) -> Any:
    new = object.__new__(type(self))
    memo[id(self)] = new
    for name, value in self.__dict__.items():
        if isinstance(value, _IMMUTABLE):
            new.__dict__[name] = value
        elif type(value) is list and all(isinstance(v, _IMMUTABLE) for v in value):
            new.__dict__[name] = list(value)
        else:
            new.__dict__[name] = copy.deepcopy(value, memo)
    return new


def install() -> bool:
    """Give pynetdicom's PresentationContext the cheap deepcopy; return whether it has it."""
    from pynetdicom.presentation import PresentationContext

    current = getattr(PresentationContext, "__deepcopy__", None)
    if current is _deepcopy_context:
        return True
    if current is not None:
        return False
    PresentationContext.__deepcopy__ = _deepcopy_context  # type: ignore[attr-defined]
    return True
