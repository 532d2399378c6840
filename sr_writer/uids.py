"""Deterministic UIDs for result objects.

A result UID is a 2.25 UID (PS3.5 B.2) of a name-based UUID (RFC 4122 version 5,
SHA-1) of the source instance UIDs, the model's name, version and device UID, and the
role of the object. (pydicom's ``generate_uid(prefix=None, ...)`` ignores its entropy
sources and returns a random UUID, so it cannot be used here.) Re-processing the
same inputs with the same model therefore yields the same UIDs, and a new model
version (or new weights with a new device UID) yields new ones.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

from pydicom.uid import UID

from sr_writer.inputs import ModelIdentity

NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:dicom-node:sr_writer:result-uids")


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
        """Return the UID of the object playing ``role`` (e.g. ``"sr-series"``)."""
        name = "\x1f".join([*self._base, *map(str, role)])
        return UID(f"2.25.{uuid.uuid5(NAMESPACE, name).int}")

    @property
    def sr_series(self) -> str:
        """The SR series UID."""
        return self.uid("sr-series")

    @property
    def sr_instance(self) -> str:
        """The SR instance UID."""
        return self.uid("sr-instance")

    @property
    def sc_series(self) -> str:
        """The Secondary Capture series UID (heatmaps and card)."""
        return self.uid("sc-series")

    def heatmap_instance(self, source_uid: str, frame: int | None, label: str) -> str:
        """Return the UID of the heatmap SC of ``label`` on one image (frame)."""
        return self.uid("heatmap", source_uid, frame, label)

    @property
    def card_instance(self) -> str:
        """The findings card instance UID."""
        return self.uid("findings-card")

    def tracking(self, source_uid: str, frame: int | None, label: str) -> str:
        """Return the Tracking UID of ``label``'s measurement group on one image (frame)."""
        return self.uid("tracking", source_uid, frame, label)

    def region_tracking(self, source_uid: str, frame: int | None, label: str) -> str:
        """Return the Tracking UID of ``label``'s TID 1410 region on one image (frame)."""
        return self.uid("region-tracking", source_uid, frame, label)

    @property
    def kos_series(self) -> str:
        """The Key Object Selection series UID."""
        return self.uid("kos-series")

    @property
    def kos_instance(self) -> str:
        """The Key Object Selection instance UID."""
        return self.uid("kos-instance")

    @property
    def pmap_series(self) -> str:
        """The Parametric Map series UID."""
        return self.uid("pmap-series")

    def pmap_instance(self, series_uid: str, label: str) -> str:
        """Return the UID of the Parametric Map of ``label`` over one series."""
        return self.uid("pmap", series_uid, label)
