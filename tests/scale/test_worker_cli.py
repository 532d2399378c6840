"""`dicom-node worker` refuses what it cannot serve."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import yaml

from tests.support.node_process import ROOT


def test_worker_refuses_a_config_without_the_celery_executor(tmp_path: Path) -> None:
    config = tmp_path / "w.yaml"
    config.write_text(yaml.safe_dump({"data_dir": str(tmp_path / "d")}))
    r = subprocess.run(
        [sys.executable, "-m", "dicom_node", "worker", "--config", str(config)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert r.returncode == 2 and "jobs.executor: celery" in r.stderr, r.stderr


def test_switching_the_executor_needs_a_restart(tmp_path: Path) -> None:
    from dicom_node.node import Node
    from dicom_node.settings.root import NodeConfig

    cfg = NodeConfig(data_dir=tmp_path / "d", models={"bundled": False})
    node = Node(cfg)
    try:
        new = cfg.model_copy(
            update={
                "jobs": cfg.jobs.model_copy(update={"executor": "celery", "retry": cfg.jobs.retry})
            }
        )
        assert node.reload(new) == ["jobs.executor"]
    finally:
        node.stop()
