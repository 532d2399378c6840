"""STOW-RS under a low open-files limit: a burst of tiny parts against a real node
started with ``ulimit -n 64``."""

from __future__ import annotations

import io
import resource
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pydicom
import requests
from pydicom.uid import generate_uid

from tests.http.support import RELATED, ct_study, multipart, stow_leftovers
from tests.support.index import query
from tests.support.node_process import NodeProcess

REQUESTS, PARTS = 8, 250  # 8: as many connections as the node allows with 64 descriptors


def _very_few_files() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))  # as `ulimit -n 64`


def _tiny_parts(folder: Path, n: int) -> list[bytes]:
    """``n`` instances of 4 x 4 pixels (1.4 kB each), each its own SOP Instance UID."""
    ds = pydicom.dcmread(ct_study(folder, n=1, seed=320, size=4)[0])
    parts = []
    for _ in range(n):
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
        out = io.BytesIO()
        ds.save_as(out, enforce_file_format=True)
        parts.append(out.getvalue())
    return parts


def test_a_burst_of_tiny_parts_under_a_low_descriptor_limit_stores_every_part(
    tmp_path: Path,
) -> None:
    """Each part's fsync, started as the part ended, held the part's file open until one
    of the 4 fsync threads took it, with no bound on how many waited: 8 requests of 250
    tiny parts under ``ulimit -n 64`` took all 64 descriptors (sampled from /proc), and
    parts failed 0xA700 "Too many open files" (202s, once a 500). Beyond a few queued,
    a part's file is now fsynced by name when it is placed."""
    config = {"models": {"bundled": False}, "http": {"max_parts": PARTS}}
    node = NodeProcess(tmp_path / "node", config, preexec_fn=_very_few_files).start()
    try:
        parts = _tiny_parts(tmp_path, REQUESTS * PARTS)
        bodies = [multipart(parts[i : i + PARTS]) for i in range(0, len(parts), PARTS)]

        def stow(body: bytes) -> requests.Response:
            return requests.post(
                node.http_url + "/dicomweb/studies",
                data=body,
                timeout=120,
                headers={"Content-Type": RELATED.format("b0undary")},
            )

        with ThreadPoolExecutor(REQUESTS) as pool:
            answers = list(pool.map(stow, bodies))
        assert [a.status_code for a in answers] == [200] * REQUESTS, answers[0].text[:300]
        assert "Too many open files" not in node.log()
        assert query(node.data_dir, "SELECT count(*) FROM instances") == [(len(parts),)]
        assert stow_leftovers(node) == []
    finally:
        assert node.stop() == 0
