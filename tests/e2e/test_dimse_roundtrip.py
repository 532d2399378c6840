"""The main job over DIMSE with real DCMTK peers: storescu -> node -> storescp.

No routes configured: the default rule runs the bundled demo model on the chest images
and sends the SR, heatmap and findings card to the destination given on the command line.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from pydicom import dcmread
from pynetdicom.sop_class import Comprehensive3DSRStorage, SecondaryCaptureImageStorage

from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.dicom3tools import dciodvfy
from tests.support.index import attempts, job_rows
from tests.support.node_process import NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_for

pytestmark = pytest.mark.peer

SR_CLASS = Comprehensive3DSRStorage
SC_CLASS = SecondaryCaptureImageStorage


def test_cr_study_comes_back_as_sr_heatmap_and_card(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_cr(seed=11)], tmp_path / "study")
    src = dcmread(source[0], stop_before_pixels=True)
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        node = NodeProcess(
            tmp_path / "node",
            config={
                "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
                "results": {"heatmaps": "top"},
            },  # one heatmap SC: a fixed count
            extra_args=["--destination", f"PACS@127.0.0.1:{pacs.port}"],
            seed_demo=False,  # a first start: the node builds the demo model itself
        )
        with node:
            storescu(node.port, source, calling="MODALITY", check=True)
            received = pacs.wait_for_files(3, timeout=60)
            time.sleep(0.5)
            rows = job_rows(node.data_dir)
            log = node.log()
        assert [r[1] for r in rows] == ["done"], (rows, log[-3000:])
        results = [dcmread(p) for p in pacs.received()]
        classes = sorted(ds.SOPClassUID for ds in results)
        assert classes.count(SR_CLASS) == 1 and classes.count(SC_CLASS) == 2, classes
        for ds in results:
            assert ds.StudyInstanceUID == src.StudyInstanceUID
            assert ds.PatientID == src.PatientID
        sr = next(ds for ds in results if ds.SOPClassUID == SR_CLASS)
        assert sr.Modality == "SR" and "demo-cxr-densenet121" in sr.SeriesDescription
        for path in received:
            assert dciodvfy(path)[0] == [], path
        assert [(a[1], a[2]) for a in attempts(node.data_dir)] == [("PACS", "delivered")]


def test_destination_down_is_retried_then_delivered_once(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_dx(seed=12)], tmp_path / "study")
    pacs = StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"])  # not started yet: down
    node = NodeProcess(
        tmp_path / "node",
        config={
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
            "jobs": {
                "retry": {"base_s": 1, "factor": 1.5, "cap_s": 2, "jitter": 0, "max_attempts": 20}
            },
            "results": {"heatmaps": "top"},  # one heatmap SC: a fixed count
        },
        extra_args=["--destination", f"PACS@127.0.0.1:{pacs.port}"],
    )
    with node:
        storescu(node.port, source, calling="MODALITY", check=True)
        wait_for(
            lambda: any(a[2] == "transient" for a in attempts(node.data_dir)),
            60,
            "a failed delivery attempt",
            node.log,
        )
        assert job_rows(node.data_dir)[0][1] in ("failed", "running", "delivering")
        with pacs:
            pacs.wait_for_files(3, timeout=60)
            wait_for(lambda: job_rows(node.data_dir)[0][1] == "done", 30, "the job done", node.log)
            time.sleep(1.5)  # a duplicate send would show up here
            delivered = [a for a in attempts(node.data_dir) if a[2] == "delivered"]
            files = pacs.received()
    assert job_rows(node.data_dir)[0][1] == "done"
    assert len(delivered) == 1
    assert len(files) == delivered[0][4]  # each result object arrived exactly once
    assert len({dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in files}) == len(files)
