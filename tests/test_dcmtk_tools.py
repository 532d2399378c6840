"""DCMTK tools are DCMTK's even with the virtual environment's ``bin/`` first on PATH.

pynetdicom installs apps named ``storescu``, ``storescp``, ``echoscu``, ``findscu``,
``movescu`` and ``getscu`` there; a test or benchmark running one by bare name silently
runs pynetdicom's instead (a benchmark measured pynetdicom's storescp as "storescp").
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.dcmtk import TOOLS, is_dcmtk

pytestmark = pytest.mark.peer

ROOT = Path(__file__).resolve().parents[1]
VENV_BIN = Path(sys.executable).parent

# What the helpers run, resolved in a fresh interpreter whose PATH has VENV_BIN first.
_RESOLVE = """
import json, sys
from pathlib import Path
from tests.support import dcmtk
from tests.support.storescp import StoreSCP

tools = {name: dcmtk.find_dcmtk_tool(name) for name in dcmtk.TOOLS}
tools["StoreSCP"] = StoreSCP(Path(sys.argv[1])).command()[0]
tools["dcmtk.storescu"] = dcmtk._storescu_command(1, [], "A", "B", [])[0]
print(json.dumps(tools))
"""


def test_dcmtk_tools_resolve_outside_the_venv(tmp_path: Path) -> None:
    assert (VENV_BIN / "storescu").exists(), "pynetdicom's apps are expected in the venv"
    env = {
        **os.environ,
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(ROOT),
    }
    out = subprocess.run(
        [sys.executable, "-c", _RESOLVE, str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    resolved = json.loads(out.stdout)
    assert set(resolved) >= set(TOOLS)
    for name, path in resolved.items():
        assert path is not None, f"DCMTK {name} not found"
        assert Path(path).parent.resolve() != VENV_BIN.resolve(), (name, path)
        assert is_dcmtk(path), (name, path)


# A DCMTK tool run by bare name: an argument list passed to subprocess that starts with
# the tool's name as a string literal, or shutil.which of that name; in a shell script, a
# command line that starts with it.
_NAMES = "|".join(TOOLS)
_BARE = {
    ".py": re.compile(r"""(?:\(\s*\[\s*|which\(\s*)["'](""" + _NAMES + r""")["']"""),
    ".sh": re.compile(r"^\s*(?:exec\s+|time\s+)?(" + _NAMES + r")\b", re.M),
}


def test_no_dcmtk_tool_is_run_by_bare_name() -> None:
    offenders = []
    for folder in ("tests", "benchmarks", "scripts"):
        for path in sorted((ROOT / folder).rglob("*")):
            pattern = _BARE.get(path.suffix)
            if pattern is None or "node_modules" in path.parts or not path.is_file():
                continue
            text = path.read_text()
            for m in pattern.finditer(text):
                line = text.count("\n", 0, m.start()) + 1
                offenders.append(f"{path.relative_to(ROOT)}:{line}: {m.group(1)}")
    assert offenders == [], "run DCMTK tools through tests.support.dcmtk.dcmtk_tool"
