"""Debian's Orthanc as a real PACS inside tests.

    with Orthanc(tmp_path / "orthanc", aet="ORTHANC",
                 modalities={"node": ("DICOM_NODE", "127.0.0.1", node_port)}) as pacs:
        pacs.upload(path)                      # REST POST /instances
        pacs.store_to_modality("node", study_id)   # what an auto-routing PACS does
        pacs.find_instance(sop_uid)            # Orthanc ID or None

Each instance has its own JSON config, storage and index in ``workdir``, HTTP and DICOM
ports free on 127.0.0.1 (HTTP is local-only: RemoteAccessAllowed false). The DICOMweb
plugin (Debian package ``orthanc-dicomweb``) is enabled when installed
(``dicomweb=None``) or on demand (``dicomweb=True`` fails if it is missing).
Optional HTTP users enable authentication. Orthanc's output goes to ``log_path``; when
the ``with`` block fails its tail is printed.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import requests

from tests.support.logged import LoggedProcess
from tests.support.ports import free_port
from tests.support.procnet import listening
from tests.support.storescp import dcmtk_env
from tests.support.waiting import ProcessExited, wait_ready

ORTHANC = "/usr/sbin/Orthanc"
PLUGIN_DIRS = (Path("/usr/share/orthanc/plugins"), Path("/usr/lib/orthanc"))
DICOMWEB_PLUGIN = "libOrthancDicomWeb.so"


def dicomweb_plugin() -> Path | None:
    """The installed DICOMweb plugin, if any."""
    for folder in PLUGIN_DIRS:
        for candidate in sorted(folder.glob(DICOMWEB_PLUGIN + "*")):
            return candidate
    return None


class Orthanc(LoggedProcess):
    """One Orthanc process with its own config on free loopback ports."""

    label = "Orthanc"

    def __init__(
        self,
        workdir: Path,
        aet: str = "ORTHANC",
        modalities: dict[str, tuple[str, str, int]] | None = None,
        dicomweb: bool | None = None,
        users: dict[str, str] | None = None,
        extra_config: dict[str, Any] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.aet = aet
        self.modalities = dict(modalities or {})
        self.users = dict(users or {})
        plugin = dicomweb_plugin()
        if dicomweb and plugin is None:
            raise RuntimeError("DICOMweb plugin requested but orthanc-dicomweb is not installed")
        self.dicomweb_plugin = plugin if dicomweb in (None, True) else None
        self.extra_config = dict(extra_config or {})
        self.http_port = free_port()
        self.dicom_port = free_port()
        self.name = f"test-{aet}-{uuid.uuid4().hex[:8]}"  # tells our Orthanc from another
        self.config_path = self.workdir / "orthanc.json"
        self.log_path = self.workdir / "orthanc.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None
        self.session = requests.Session()
        if self.users:
            user, password = next(iter(self.users.items()))
            self.session.auth = (user, password)

    @property
    def url(self) -> str:
        """The REST root, e.g. ``http://127.0.0.1:8042``."""
        return f"http://127.0.0.1:{self.http_port}"

    @property
    def dicomweb_url(self) -> str:
        """The DICOMweb root (``/dicom-web``), when the plugin is enabled."""
        return f"{self.url}/dicom-web"

    @property
    def has_dicomweb(self) -> bool:
        """Whether the DICOMweb plugin is enabled for this instance."""
        return self.dicomweb_plugin is not None

    def config(self) -> dict[str, Any]:
        """The JSON configuration written for this instance."""
        cfg: dict[str, Any] = {
            "Name": self.name,
            "StorageDirectory": str(self.workdir / "storage"),
            "IndexDirectory": str(self.workdir / "index"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": self.aet,
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": bool(self.users),
            "RegisteredUsers": self.users,
            "DicomModalities": {k: list(v) for k, v in self.modalities.items()},
            "DicomCheckCalledAet": False,
            "DicomAlwaysAllowStore": True,
            "DicomScuTimeout": 10,
            "DicomAssociationCloseDelay": 0,
            "StableAge": 2,
            "ConcurrentJobs": 2,
            "HttpThreadsCount": 8,
            "SaveJobs": False,
            "Plugins": [],
        }
        if self.dicomweb_plugin is not None:
            cfg["Plugins"] = [str(self.dicomweb_plugin)]
            cfg["DicomWeb"] = {
                "Enable": True,
                "Root": "/dicom-web/",
                "EnableWado": True,
                "Ssl": False,
            }
        cfg.update(self.extra_config)
        return cfg

    def start(self, timeout: float = 40.0) -> Orthanc:
        """Write the config, start Orthanc and wait until it serves HTTP and DICOM.

        Ready means ``/system`` answers with this instance's unique name and the Orthanc
        process itself listens on the DICOM port. If it exits during start-up (e.g. a
        port taken by another test in the meantime), it is retried on new free ports,
        up to 3 times.
        """
        self.workdir.mkdir(parents=True, exist_ok=True)
        failure = ""
        for attempt in range(3):
            if attempt:
                self.http_port, self.dicom_port = free_port(), free_port()
            outcome = self._start_once(timeout)
            if outcome == "ready":
                return self
            failure = self.log_tail()
            self.stop()
            if outcome == "timeout":
                raise TimeoutError(f"Orthanc not ready within {timeout}s:\n{failure}")
        raise RuntimeError(f"Orthanc did not start:\n{failure}")

    def _start_once(self, timeout: float) -> str:
        self.config_path.write_text(json.dumps(self.config(), indent=2))
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [ORTHANC, "--no-jobs", str(self.config_path)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            env=dcmtk_env(),
        )
        try:
            wait_ready(self.proc, self._serving, timeout, interval=0.1)
            return "ready"
        except ProcessExited:
            return "exited"
        except TimeoutError:
            return "timeout"

    def _serving(self) -> bool:
        """Whether ``/system`` answers with this instance's name and DICOM is listening."""
        assert self.proc is not None
        try:
            rsp = self.session.get(f"{self.url}/system", timeout=1)
            return (
                rsp.status_code == 200
                and rsp.json().get("Name") == self.name
                and listening(self.dicom_port, self.proc.pid)
            )
        except (requests.RequestException, ValueError):
            return False

    def stop(self) -> None:
        """Terminate Orthanc (kill after 10 s)."""
        self._terminate(10)
        self.session.close()

    # --- REST helpers -------------------------------------------------------------------

    def get(self, path: str, **kw: Any) -> Any:
        """GET ``path`` and return the decoded JSON (raises on HTTP errors)."""
        rsp = self.session.get(f"{self.url}{path}", timeout=kw.pop("timeout", 30), **kw)
        rsp.raise_for_status()
        return rsp.json()

    def post(self, path: str, **kw: Any) -> Any:
        """POST to ``path`` and return the decoded JSON (raises on HTTP errors)."""
        rsp = self.session.post(f"{self.url}{path}", timeout=kw.pop("timeout", 60), **kw)
        rsp.raise_for_status()
        return rsp.json() if rsp.content else None

    def upload(self, path: Path) -> dict[str, Any]:
        """Store one DICOM file through ``POST /instances``; returns Orthanc's answer."""
        return self.post(
            "/instances",
            data=Path(path).read_bytes(),
            headers={"Content-Type": "application/dicom"},
        )

    def find(self, level: str, query: dict[str, str]) -> list[str]:
        """Orthanc IDs of resources at ``level`` (Patient/Study/Series/Instance)."""
        return self.post("/tools/find", json={"Level": level, "Query": query})

    def find_instance(self, sop_instance_uid: str) -> str | None:
        """The Orthanc ID of the instance with this SOP Instance UID, or None."""
        ids = self.find("Instance", {"SOPInstanceUID": sop_instance_uid})
        return ids[0] if ids else None

    def instance_count(self) -> int:
        """Instances stored (from ``/statistics``)."""
        return int(self.get("/statistics")["CountInstances"])

    def instance_file(self, orthanc_id: str) -> bytes:
        """The stored DICOM file of an instance."""
        rsp = self.session.get(f"{self.url}/instances/{orthanc_id}/file", timeout=30)
        rsp.raise_for_status()
        return rsp.content

    def metadata(self, orthanc_id: str, name: str) -> str:
        """An instance's Orthanc metadata item (e.g. ``RemoteAET``, ``TransferSyntax``)."""
        rsp = self.session.get(f"{self.url}/instances/{orthanc_id}/metadata/{name}", timeout=10)
        rsp.raise_for_status()
        return rsp.text

    def add_modality(self, name: str, aet: str, host: str, port: int) -> None:
        """Register (or update) a DICOM modality at run time."""
        rsp = self.session.put(
            f"{self.url}/modalities/{name}",
            timeout=10,
            json={"AET": aet, "Host": host, "Port": port},
        )
        rsp.raise_for_status()
        self.modalities[name] = (aet, host, port)

    def store_to_modality(
        self, modality: str, resources: list[str] | str, timeout: float = 60
    ) -> Any:
        """C-STORE resources (Orthanc IDs) to a registered modality, synchronously."""
        ids = [resources] if isinstance(resources, str) else list(resources)
        return self.post(
            f"/modalities/{modality}/store",
            timeout=timeout,
            json={"Resources": ids, "Synchronous": True},
        )
