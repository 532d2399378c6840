"""pynetdicom's UID validator, its result remembered per distinct UID string.

Every association request from a modality proposes up to 128 presentation contexts (DCMTK's
``storescu``: 128 abstract and 192 transfer syntaxes), and pynetdicom validates each UID
several times while it decodes the request, builds the contexts and negotiates them:
~700 calls of its UI validator per association, each building a pydicom ``UID`` (with
pydicom's own regex check) before checking it, for the same few hundred strings every
time. :func:`install` wraps the validator pynetdicom is configured with
(``pynetdicom._config.VALIDATORS["UI"]``, its documented way to customise validation) so
that each distinct string is validated once: the result (and the reason of a refusal)
is exactly the wrapped validator's, for the same string and the same
``ENFORCE_UID_CONFORMANCE``. What else pynetdicom checks around the validator (its
warnings for non-conformant UIDs, the pydicom ``UID`` it builds) runs as before.

The memory stays bounded whatever a peer sends: past :data:`MAX_ENTRIES` distinct
strings the cache starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

MAX_ENTRIES = 4096  # distinct (UID, conformance flag) pairs remembered at most

Validator = Callable[[Any], tuple[bool, str]]


class MemoisedUIValidator:
    """A UI validator that calls ``original`` once per distinct UID string."""

    def __init__(self, original: Validator, max_entries: int = MAX_ENTRIES) -> None:
        self.original = original
        self.max_entries = max_entries
        self._results: dict[tuple[str, bool], tuple[bool, str]] = {}  # (UID, flag) -> result

    def __call__(self, value: Any) -> tuple[bool, str]:
        if not isinstance(value, str):  # the original's own answer for a non-UID
            return self.original(value)
        from pynetdicom import _config

        key = (value, bool(_config.ENFORCE_UID_CONFORMANCE))
        result = self._results.get(key)
        if result is None:
            result = self.original(value)
            if len(self._results) >= self.max_entries:
                self._results.clear()  # a peer inventing UIDs: start afresh, bounded
            self._results[key] = result
        return result


def install() -> bool:
    """Memoise pynetdicom's configured UI validator (idempotent); return whether it is."""
    from pynetdicom import _config

    current = _config.VALIDATORS.get("UI")
    if isinstance(current, MemoisedUIValidator):
        return True
    if current is None:
        return False
    _config.VALIDATORS["UI"] = MemoisedUIValidator(current)
    return True
