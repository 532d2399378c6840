"""Where a job's input files come from: the one interface between a worker and the node's
store.

- ``SharedFilesystem``: each instance is read at the path the node indexed; the node's data
  directory must be mounted on the worker at the same path (NFS, a shared volume).
- ``WadoRsInputs``: each instance is fetched from the node's WADO-RS (``dicom-node serve``'s
  HTTP face, with a bearer token) into a spool in the worker's own data directory, emptied
  after each job: no shared filesystem.

Results need no hand-back: the worker that ran the job delivers them itself and records
every attempt and response in the shared database, exactly as the embedded executor does,
so `jobs show` and retries see one history whoever sent (see docs/scale.md).
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Protocol

from pydicom.filewriter import dcmwrite

from dicom_node.index.tables import Instance
from dicom_node.store.writer import safe_component

log = logging.getLogger(__name__)


class JobInputs(Protocol):
    def local_path(self, row: Instance) -> Path:
        """A readable local file holding the instance ``row`` indexes."""
        ...

    def release(self) -> None:
        """The job is over: drop what was fetched for it."""
        ...


class SharedFilesystem:
    """Inputs read in place, from the node's data directory (local or mounted)."""

    def local_path(self, row: Instance) -> Path:
        return Path(row.path)

    def release(self) -> None:
        return None


class WadoRsInputs:
    """Inputs fetched with dicomweb-client from ``{node_url}/dicomweb`` (WADO-RS)."""

    def __init__(self, node_url: str, spool: Path, token: str | None = None) -> None:
        from dicomweb_client.api import DICOMwebClient

        headers = {"Authorization": f"Bearer {token}"} if token else None
        self.client = DICOMwebClient(url=node_url.rstrip("/") + "/dicomweb", headers=headers)
        self.spool = Path(spool)
        self.fetched = 0

    def local_path(self, row: Instance) -> Path:
        path = self.spool / f"{safe_component(row.sop_instance_uid)}.dcm"
        if not path.is_file():
            ds = self.client.retrieve_instance(row.study_uid, row.series_uid, row.sop_instance_uid)
            self.spool.mkdir(parents=True, exist_ok=True)
            part = path.with_suffix(".part")
            dcmwrite(part, ds, enforce_file_format=True)
            part.replace(path)
            self.fetched += 1
            log.debug("fetched %s via WADO-RS", row.sop_instance_uid)
        return path

    def release(self) -> None:
        if self.fetched:
            log.info("fetched %d instance(s) via WADO-RS", self.fetched)
        self.fetched = 0
        shutil.rmtree(self.spool, ignore_errors=True)
