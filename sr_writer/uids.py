"""Deterministic UIDs for result objects.

A result UID is a 2.25 UID (UUID-derived, PS3.5 B.2) computed by pydicom's
``generate_uid(prefix=None, entropy_srcs=...)`` from the source instance UIDs, the
model's name, version and device UID, and the role of the object. Re-processing the
same inputs with the same model therefore yields the same UIDs, and a new model
version (or new weights with a new device UID) yields new ones.
"""

from __future__ import annotations

from collections.abc import Iterable

from pydicom.uid import generate_uid

from sr_writer.inputs import ModelIdentity


class ResultUIDs:
    """Derives every UID of one write from the inputs and the model identity."""

    def __init__(self, source_uids: Iterable[str], model: ModelIdentity) -> None:
        self._base = [
            "dicom-node-results-v1",
            *sorted(set(source_uids)),
            model.name,
            model.version,
            model.device_uid,
        ]

    def uid(self, *role: object) -> str:
        """The UID for the object playing ``role`` (e.g. ``"sr-series"``)."""
        return generate_uid(prefix=None, entropy_srcs=[*self._base, *map(str, role)])

    @property
    def sr_series(self) -> str:
        return self.uid("sr-series")

    @property
    def sr_instance(self) -> str:
        return self.uid("sr-instance")

    @property
    def sc_series(self) -> str:
        return self.uid("sc-series")

    def heatmap_instance(self, source_uid: str, frame: int | None, label: str) -> str:
        return self.uid("heatmap", source_uid, frame, label)

    @property
    def card_instance(self) -> str:
        return self.uid("findings-card")

    def tracking(self, source_uid: str, frame: int | None, label: str) -> str:
        return self.uid("tracking", source_uid, frame, label)
