"""The admin API against its own OpenAPI document: schemathesis generates requests (a
bounded, seeded run) and no answer may be a server error."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.node_process import NodeProcess

SCHEMATHESIS = shutil.which("schemathesis") or str(Path(sys.executable).parent / "schemathesis")


@pytest.mark.skipif(not Path(SCHEMATHESIS).exists(), reason="schemathesis not installed")
def test_no_server_errors_from_generated_requests(tmp_path: Path) -> None:
    with NodeProcess(tmp_path, {"models": {"bundled": False}}) as node:
        r = subprocess.run(
            [
                SCHEMATHESIS,
                "run",
                f"{node.http_url}/api/openapi.json",
                "--checks",
                "not_a_server_error",
                "--max-examples",
                "25",
                "--seed",
                "1",
                "--request-timeout",
                "30",
            ],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert r.returncode == 0, r.stdout[-4000:]
        assert " passed" in r.stdout
        assert "Exception in ASGI application" not in node.log()
