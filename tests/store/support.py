"""Helpers of the store tests: a node on a chosen index, racing senders, consistency."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from pydicom import dcmread
from pydicom.dataset import Dataset
from pynetdicom import AE

from dicom_node.store.origin import DIMSE, STOWRS, Origin, OriginError, origin_of
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.studies import spooled_data

# Two origins of the origin-record tests: a modality on a DIMSE AE title, a STOW-RS client.
MODX = Origin(DIMSE, "BYSERIES", "MODX", "10.0.0.7")
WEB = Origin(STOWRS, "WEBSRC", "http", "127.0.0.1")


def node_config(index_url: str, **config: Any) -> dict[str, Any]:
    """``config`` with the index on ``index_url`` (SQLite: the node's default file)."""
    cfg: dict[str, Any] = {"models": {"bundled": False}, **config}
    return cfg if index_url.startswith("sqlite") else {**cfg, "database_url": index_url}


def inconsistencies(proc: NodeProcess) -> list[str]:
    """What breaks "every index row has its file and every file its row" (empty if
    nothing), or "every file's origin record names where its row says it came from",
    plus data left in ``incoming/``."""
    problems = []
    rows = query(
        proc.index,
        "SELECT sop_instance_uid, path, called_ae, calling_ae, peer_address FROM instances",
    )
    paths = {}
    for sop, path, *came_from in rows:
        paths[Path(path)] = sop
        if not Path(path).is_file():
            problems.append(f"row {sop}: no file at {path}")
            continue
        if dcmread(path, stop_before_pixels=True).SOPInstanceUID != sop:
            problems.append(f"row {sop}: file {path} holds another instance")
        try:
            origin = origin_of(Path(path))
        except OriginError as err:
            problems.append(f"row {sop}: no origin record: {err}")
            continue
        if [origin.called_ae, origin.calling_ae, origin.peer_address] != came_from:
            problems.append(f"row {sop}: origin record {origin} differs from {came_from}")
    instances = proc.data_dir / "instances"
    files = set(instances.rglob("*.dcm")) if instances.exists() else set()
    problems += [f"file {f} has no row" for f in sorted(files - set(paths))]
    problems += [f"half-written {f}" for f in spooled_data(proc.data_dir / "incoming")]
    tmp = proc.workdir / "tmp"  # pynetdicom's own files, with the spool tweak off
    problems += [f"received, left {f}" for f in (tmp.glob("*.dcm") if tmp.exists() else [])]
    return problems


def associate(port: int, sop_class: str, ts: str, calling: str = "RACER") -> Any:
    """An established association proposing ``sop_class`` in ``ts``."""
    ae = AE(ae_title=calling)
    ae.add_requested_context(sop_class, ts)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    assert assoc.is_established
    return assoc


def race(port: int, versions: list[Dataset], ts: str) -> list[int]:
    """Send each dataset of ``versions`` on its own association at the same moment;
    return the statuses."""
    return race_two_nodes([port] * len(versions), versions, ts)


def race_two_nodes(
    ports: list[int], versions: list[Dataset], ts: str = "1.2.840.10008.1.2.1"
) -> list[int]:
    """Send ``versions[i]`` to ``ports[i]``, each on its own association, at once."""
    assocs = [
        associate(port, versions[0].SOPClassUID, ts, f"RACER{i}") for i, port in enumerate(ports)
    ]
    barrier = threading.Barrier(len(versions))
    statuses: list[int] = [-1] * len(versions)

    def send(i: int) -> None:
        barrier.wait()
        statuses[i] = int(assocs[i].send_c_store(versions[i]).Status)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(versions))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    for a in assocs:
        a.release()
    return statuses


def write_part10(
    ds: Dataset,
    path: Path,
    sop: str | None = None,
    ts: str = "1.2.840.10008.1.2.1",
    body: bytes | None = None,
) -> Path:
    """Write ``ds`` (or the encoded ``body`` instead of it) behind a File Meta naming
    ``sop`` (default: the dataset's) and ``ts``, whatever the dataset holds; send it
    unchanged with :func:`tests.support.scu.store_file_raw`."""
    from pydicom.dataset import FileMetaDataset
    from pydicom.filebase import DicomBytesIO
    from pydicom.filewriter import write_dataset, write_file_meta_info
    from pydicom.uid import UID

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = ds.SOPClassUID
    meta.MediaStorageSOPInstanceUID = sop or ds.SOPInstanceUID
    meta.TransferSyntaxUID = UID(ts)
    meta.ImplementationClassUID = "1.2.826.0.1.3680043.9.7433.1.1"
    if body is None:
        fp = DicomBytesIO()
        fp.is_little_endian = True
        fp.is_implicit_VR = UID(ts).is_implicit_VR
        write_dataset(fp, ds)
        body = fp.getvalue()
    out = DicomBytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, meta, enforce_standard=True)
    path.write_bytes(out.getvalue() + body)
    return path
