"""Helpers shared by the receive tests: DCMTK runs, index reads, C-STORE of raw bytes."""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path

from pydicom.uid import UID
from pynetdicom import AE, _config
from sqlalchemy import create_engine, text

from dicom_node.db import sqlite_url

ENV = {**os.environ, "TCP_NODELAY": "1"}


def storescu(port: int, files: list[Path], called: str = "DICOM_NODE",
             calling: str = "STORESCU", *extra: str) -> subprocess.CompletedProcess[str]:
    """Run DCMTK storescu verbosely over one association."""
    return subprocess.run(["storescu", "-v", "-aet", calling, "-aec", called, *extra,
                           "127.0.0.1", str(port), *map(str, files)],
                          env=ENV, capture_output=True, text=True, timeout=120)


def echoscu(port: int, called: str, calling: str = "ECHOSCU") -> subprocess.CompletedProcess[str]:
    """Run DCMTK echoscu."""
    return subprocess.run(["echoscu", "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                          env=ENV, capture_output=True, text=True, timeout=60)


def query(index: Path | str, sql: str, **params: object) -> list[tuple]:
    """Read the node's index directly: a data directory's SQLite file (WAL lets us read
    while it runs) or a database URL."""
    url = index if isinstance(index, str) else sqlite_url(Path(index) / "index.sqlite")
    engine = create_engine(url)
    try:
        with engine.connect() as c:
            return [tuple(r) for r in c.execute(text(sql), params)]
    finally:
        engine.dispose()


def wait_until(predicate, timeout: float = 20.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


def store_file_raw(port: int, path: Path, called: str = "DICOM_NODE",
                   calling: str = "PYNETDICOM") -> int:
    """C-STORE a Part 10 file *without decoding it*: pynetdicom streams the bytes after the
    File Meta as the dataset. Returns the status the node answered."""
    from pydicom.filereader import read_file_meta_info

    meta = read_file_meta_info(path)
    ae = AE(ae_title=calling)
    ae.add_requested_context(meta.MediaStorageSOPClassUID, [UID(meta.TransferSyntaxUID)])
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True
    try:
        assoc = ae.associate("127.0.0.1", port, ae_title=called)
        assert assoc.is_established, "association not established"
        try:
            status = assoc.send_c_store(path)
        finally:
            assoc.release()
    finally:
        _config.STORE_SEND_CHUNKED_DATASET = old
    return int(status.Status)


def spooled_data(incoming: Path) -> list[Path]:
    """Files in a spool directory that hold data; the empty ones are kept ready for the
    next C-STORE (:mod:`dicom_node.network.spool`)."""
    return [p for p in incoming.iterdir() if p.stat().st_size]


def storescu_successes(storescu_log: str) -> list[str]:
    """Files storescu got a Success response for (its -v log pairs file and response)."""
    done, current = [], None
    for line in storescu_log.splitlines():
        m = re.match(r"I: Sending file: (.+)$", line)
        if m:
            current = m.group(1).strip()
        elif "Received Store Response (Success)" in line and current:
            done.append(current)
            current = None
    return done
