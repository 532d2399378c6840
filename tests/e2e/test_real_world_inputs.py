"""Real-world inputs through a real node: storescu -> node (demo model) -> storescp.

A real chest CR from ``pydicom-data`` (RG1_UNCI: Pixel Spacing 0\\0, no Imager Pixel
Spacing) comes back as an SR, heatmap and card with zero dciodvfy errors; an image
whose pixel data cannot be decoded, or whose results cannot be written, fails its job
once, permanently, with a one-line reason and no traceback in the log; so does a
Deflated image that inflates far past its attributes, which the node never inflates
whole, and stays ready.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import requests
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.uid import DeflatedExplicitVRLittleEndian
from pynetdicom.sop_class import Comprehensive3DSRStorage as SR_CLASS
from pynetdicom.sop_class import SecondaryCaptureImageStorage as SC_CLASS

from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.dicom3tools import dciodvfy
from tests.support.index import job_rows
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_for

pytestmark = pytest.mark.peer

# A transient failure would be retried within a second with this policy.
FAST_RETRY = {"base_s": 0.2, "factor": 1.0, "cap_s": 0.2, "jitter": 0, "max_attempts": 8}


def _node(tmp_path: Path, pacs: StoreSCP) -> NodeProcess:
    return NodeProcess(
        tmp_path / "node",
        config={
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
            "jobs": {"retry": FAST_RETRY},
        },
        extra_args=["--destination", f"PACS@127.0.0.1:{pacs.port}"],
    )


def _wait_for_state(node: NodeProcess, state: str, timeout: float = 120.0) -> None:
    def reached() -> bool:
        rows = job_rows(node.data_dir)
        return bool(rows) and rows[0][1] == state

    wait_for(reached, timeout, f"the job {state}", node.log)


def test_real_chest_cr_comes_back_without_errors(tmp_path: Path) -> None:
    path = Path(get_testdata_file("RG1_UNCI.dcm"))
    src = dcmread(path, stop_before_pixels=True)
    pacs = StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"])
    with pacs, _node(tmp_path, pacs) as node:
        storescu(node.port, [path], calling="MODALITY", check=True)
        _wait_for_state(node, "done")
        rows = job_rows(node.data_dir)
        received = pacs.received()
    assert [r[1] for r in rows] == ["done"], rows
    results = [dcmread(p) for p in received]
    classes = sorted(ds.SOPClassUID for ds in results)
    assert classes.count(SR_CLASS) == 1 and classes.count(SC_CLASS) >= 2, classes
    for ds, p in zip(results, received, strict=True):
        assert ds.StudyInstanceUID == src.StudyInstanceUID
        if ds.SOPClassUID == SC_CLASS:
            assert "PixelSpacing" not in ds  # the source's 0\0 is not copied
        errors, _ = dciodvfy(p)
        assert errors == [], (p, errors)


def _undecodable_cr(folder: Path) -> Path:
    """pydicom's JPEG-lossy.dcm (12-bit JPEG Extended, which no installed decoder reads;
    well-formed, so the node stores it) relabelled as a chest PA CR in its own study."""
    ds = dcmread(get_testdata_file("JPEG-lossy.dcm"))
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.1"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = "CR", "CHEST", "PA"
    ds.StudyInstanceUID = synthetic.new_uid()
    ds.SeriesInstanceUID = synthetic.new_uid()
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = synthetic.new_uid()
    return synthetic.write_files([ds], folder)[0]


def _unwritable_cr(folder: Path) -> Path:
    """Two frames in a single-frame SOP Class (CR Image): inferred, but no SR can
    reference frame 2 of it."""
    ds = synthetic.make_cr(rows=256, cols=256, seed=32)
    ds.NumberOfFrames = 2
    ds.PixelData = ds.PixelData * 2
    return synthetic.write_files([ds], folder)[0]


@pytest.mark.parametrize(
    ("make", "kind"), [(_undecodable_cr, "DecodeError"), (_unwritable_cr, "cannot be written")]
)
def test_bad_image_fails_once_with_a_readable_reason(tmp_path: Path, make, kind: str) -> None:
    path = make(tmp_path / "study")
    sop = dcmread(path, stop_before_pixels=True).SOPInstanceUID
    # -xx: propose JPEG Extended too (the undecodable file is sent as it is)
    pacs = StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"])
    with pacs, _node(tmp_path, pacs) as node:
        storescu(node.port, [path], "DICOM_NODE", "MODALITY", "-xx", check=True)
        _wait_for_state(node, "dead", timeout=60)
        time.sleep(1.5)  # a retry (0.2 s backoff) would show up here
        rows = job_rows(node.data_dir)
        log = node.log()
    ((_, state, attempts, error),) = rows
    assert (state, attempts) == ("dead", 1), (rows, log[-3000:])
    assert "\n" not in error and kind in error, error
    assert sop in error or dcmread(path, stop_before_pixels=True).StudyInstanceUID in error
    assert "Traceback" not in log, log[-3000:]
    failures = [line for line in log.splitlines() if "failed (dead)" in line]
    assert len(failures) == 1, failures
    assert pacs.received() == []


def test_a_deflate_bomb_fails_its_job_once_and_the_node_stays_ready(tmp_path: Path) -> None:
    """A chest CR stored Deflated whose Pixel Data inflates to 96 MB while its
    attributes say 64 x 64 (96 kB sent): its job is dead after one attempt with a
    one-line reason naming the study, the node never holds the inflated bytes (its peak
    RSS) and answers /health and /ready."""
    ds = synthetic.make_cr(rows=64, cols=64, seed=33)
    ds.PixelData = bytes(96 * 2**20)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    path = synthetic.write_files([ds], tmp_path / "study")[0]
    assert path.stat().st_size < 2**20
    pacs = StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"])
    with pacs, _node(tmp_path, pacs) as node:
        Path(f"/proc/{node.pid}/clear_refs").write_text("5")  # VmHWM := VmRSS
        before = node.peak_rss_kb()
        # Sent as stored (storescu would send it inflated: no longer a bomb).
        assert store_file_raw(node.port, path, calling="MODALITY") == 0
        _wait_for_state(node, "dead", timeout=60)
        time.sleep(1.5)  # a retry (0.2 s backoff) would show up here
        rows = job_rows(node.data_dir)
        log = node.log()
        grown_kb = node.peak_rss_kb() - before
        health = requests.get(node.http_url + "/health", timeout=10)
        ready = requests.get(node.http_url + "/ready", timeout=10)
    ((_, state, attempts, error),) = rows
    assert (state, attempts) == ("dead", 1), (rows, log[-3000:])
    assert "more than its image attributes allow" in error and ds.StudyInstanceUID in error
    assert "\n" not in error and "Traceback" not in log, log[-3000:]
    failures = [line for line in log.splitlines() if "failed (dead)" in line]
    assert len(failures) == 1 and ds.StudyInstanceUID in failures[0], failures
    assert grown_kb < 64 * 1024, grown_kb
    assert health.json() == {"status": "ok"} and ready.status_code == 200, ready.text
    assert pacs.received() == []
