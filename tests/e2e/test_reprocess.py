"""A real node, real DCMTK peers: a study whose route named a model the node cannot run
dies once; the admin fixes the route, reloads, and `dicom-node studies reprocess` makes
the results arrive. Reprocessing again yields the same result UIDs (they replace, not
add). The banner warns that the demo model's results go to a destination."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from pydicom import dcmread
from pynetdicom.sop_class import Comprehensive3DSRStorage

from ai.bundled.cache import demo_manifest
from ai.manifest import dump_manifest
from dicom_node import synthetic
from tests.support.dcmtk import storescu
from tests.support.dicom3tools import dciodvfy
from tests.support.index import job_rows
from tests.support.node_process import ROOT, NodeProcess
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_for

pytestmark = pytest.mark.peer

SR_CLASS = Comprehensive3DSRStorage


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "dicom_node", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_fix_the_route_reload_and_reprocess(tmp_path: Path) -> None:
    source = synthetic.write_files([synthetic.make_cr(seed=51)], tmp_path / "study")
    study_uid = dcmread(source[0], stop_before_pixels=True).StudyInstanceUID
    with StoreSCP(tmp_path / "pacs", ae_title="PACS", extra_args=["-uf"]) as pacs:
        # A package the node knows by name but cannot load (its ONNX file is damaged).
        node = NodeProcess(
            tmp_path / "node",
            config={
                "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 0.5}],
                "destinations": [
                    {
                        "name": "pacs",
                        "kind": "dimse",
                        "ae_title": "PACS",
                        "host": "127.0.0.1",
                        "port": pacs.port,
                    }
                ],
                "routes": [
                    {
                        "name": "chest",
                        "match": {"modality": "CR"},
                        "models": ["cxr-broken"],
                        "destinations": ["pacs"],
                    }
                ],
            },
        )
        broken = node.data_dir / "models" / "cxr-broken"
        broken.mkdir(parents=True)
        dump_manifest(
            demo_manifest("1.2.3").model_copy(update={"name": "cxr-broken"}), broken / "model.yaml"
        )
        (broken / "model.onnx").write_bytes(b"not an onnx file")
        with node:
            storescu(node.port, source, calling="MODALITY", check=True)
            wait_for(
                lambda: [r[1] for r in job_rows(node.data_dir)] == ["dead"],
                60,
                "the job to die",
                node.log,
            )
            assert "cxr-broken" in job_rows(node.data_dir)[0][3]
            assert pacs.received() == []

            # Re-sending the study does not help (a kept-first duplicate), and `jobs
            # retry` would run the same route again. Fix the route, reload, reprocess.
            cfg = yaml.safe_load(node.config_path.read_text())
            cfg["routes"][0]["models"] = ["demo-cxr-densenet121"]
            node.config_path.write_text(yaml.safe_dump(cfg))
            reload = cli("config", "reload", "-c", str(node.config_path))
            assert reload.returncode == 0, reload.stderr
            wait_for(lambda: "configuration reloaded" in node.log(), 30, "the reload", node.log)
            # The reloaded route sends the demo model's results to the PACS: said so.
            wait_for(
                lambda: "route 'chest' sends results of the NON-CLINICAL DEMO model" in node.log(),
                10,
                "the demo warning",
                node.log,
            )
            done = cli("studies", "reprocess", study_uid, "-c", str(node.config_path))
            assert done.returncode == 0, done.stdout + done.stderr
            assert "reprocess of group 1; rules: chest (infer)" in done.stdout
            wait_for(
                lambda: [r[1] for r in job_rows(node.data_dir)] == ["dead", "done"],
                90,
                "the reprocessed job",
                node.log,
            )
            first = {dcmread(f, stop_before_pixels=True).SOPInstanceUID: f for f in pacs.received()}
            classes = [dcmread(f, stop_before_pixels=True).SOPClassUID for f in first.values()]
            assert classes.count(SR_CLASS) == 1 and len(classes) >= 2  # SR, card, heatmaps
            for path in first.values():
                assert dciodvfy(path)[0] == [], path

            # Once more: new job, the same result UIDs (the PACS replaces, not adds).
            again = cli("studies", "reprocess", study_uid, "-c", str(node.config_path))
            assert again.returncode == 0, again.stdout + again.stderr
            wait_for(
                lambda: (
                    [r[1] for r in job_rows(node.data_dir)][-1:] == ["done"]
                    and len(job_rows(node.data_dir)) == 3
                ),
                90,
                "the second reprocess",
                node.log,
            )
            time.sleep(1.0)
            second = {dcmread(f, stop_before_pixels=True).SOPInstanceUID for f in pacs.received()}
        assert second == set(first)
        assert "REFUSED" in node.log() and "cxr-broken" in node.log()


def test_banner_warns_when_demo_results_go_to_a_destination(tmp_path: Path) -> None:
    node = NodeProcess(tmp_path / "node", extra_args=["--destination", "PACS@127.0.0.1:1"])
    with node:
        wait_for(lambda: "dicom-node is running" in node.log(), 30, "the banner", node.log)
        log = node.log()
    assert (
        "WARNING: route 'default:demo-cxr-densenet121' sends results of the "
        "NON-CLINICAL DEMO model demo-cxr-densenet121 (untrained weights) to PACS"
    ) in log
