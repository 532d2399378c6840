"""Where a job's input files come from: the one interface between a worker and the node's
store.

``SharedFilesystem`` (today's only implementation) reads each instance at the path the
node indexed: the node's data directory must be mounted on the worker at the same path
(NFS, a shared volume). Results need no hand-back: the worker that ran the job delivers
them itself and records every attempt and response in the shared database, exactly as
the embedded executor does, so `jobs show` and retries see one history whoever sent.
A WADO-RS implementation (fetch the group's instances into a worker-local spool) plugs
in here without touching the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from dicom_node.index.tables import Instance


class JobInputs(Protocol):
    def local_path(self, row: Instance) -> Path:
        """A readable local file holding the instance ``row`` indexes."""
        ...


class SharedFilesystem:
    """Inputs read in place, from the node's data directory (local or mounted)."""

    def local_path(self, row: Instance) -> Path:
        return Path(row.path)
