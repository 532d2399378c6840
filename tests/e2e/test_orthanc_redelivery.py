"""Orthanc as the destination: down at first, then up. Results are retried and stored
once; the same study processed again lands on the same UIDs (nothing duplicated)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread

from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.index import attempts, job_rows
from tests.support.node_process import NodeProcess
from tests.support.orthanc import Orthanc
from tests.support.waiting import wait_for

pytestmark = pytest.mark.peer


def test_orthanc_down_then_up_then_reprocessed(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_cr(seed=41)], tmp_path / "study")
    study_uid = dcmread(source[0], stop_before_pixels=True).StudyInstanceUID
    orthanc = Orthanc(tmp_path / "orthanc", aet="ORTHANC")  # not started: down
    node = NodeProcess(
        tmp_path / "node",
        config={
            "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
            "duplicate_policy": "replace",  # a re-sent study is processed again
            "results": {"heatmaps": "top"},  # one heatmap SC: a fixed count
            "jobs": {
                "retry": {"base_s": 1, "factor": 1.0, "cap_s": 1, "jitter": 0, "max_attempts": 30}
            },
        },
        extra_args=["--destination", f"ORTHANC@127.0.0.1:{orthanc.dicom_port}"],
    )
    with node:
        storescu(node.port, source, calling="MODALITY", check=True)
        wait_for(
            lambda: any(a[2] == "transient" for a in attempts(node.data_dir)),
            60,
            "a failed attempt while Orthanc is down",
            node.log,
        )
        with orthanc:
            wait_for(lambda: job_rows(node.data_dir)[0][1] == "done", 60, "job done", node.log)
            # SR + heatmap + findings card (+ key object selection when something is positive)
            sent = [a[3] for a in attempts(node.data_dir) if a[2] == "delivered"][0]
            assert sent in (3, 4)
            assert orthanc.instance_count() == sent
            first = {
                orthanc.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
                for i in orthanc.get("/instances")
            }
            # The same study again: a new group, a new job, the same result UIDs.
            storescu(node.port, source, calling="MODALITY", check=True)
            wait_for(
                lambda: (
                    len(job_rows(node.data_dir)) == 2 and job_rows(node.data_dir)[1][1] == "done"
                ),
                60,
                "second job",
                node.log,
            )
            assert orthanc.instance_count() == sent
            second = {
                orthanc.get(f"/instances/{i}")["MainDicomTags"]["SOPInstanceUID"]
                for i in orthanc.get("/instances")
            }
            studies = orthanc.get("/studies")
            assert len(studies) == 1
            assert (
                orthanc.get(f"/studies/{studies[0]}")["MainDicomTags"]["StudyInstanceUID"]
                == study_uid
            )
    assert first == second
    outcomes = [(a[0], a[2]) for a in attempts(node.data_dir)]
    assert outcomes.count((1, "delivered")) == 1 and outcomes.count((2, "delivered")) == 1
