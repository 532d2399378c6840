"""dicom3tools' dciodvfy as a test helper: its errors and warnings for one file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

HAVE_DCIODVFY = shutil.which("dciodvfy") is not None


def dciodvfy(path: Path) -> tuple[list[str], list[str]]:
    """(errors, warnings) lines of dciodvfy for ``path`` (warnings with spaces collapsed)."""
    proc = subprocess.run(
        ["dciodvfy", str(path)], capture_output=True, text=True, errors="replace", timeout=120
    )
    lines = (proc.stdout + proc.stderr).splitlines()
    errors = [line for line in lines if line.startswith("Error")]
    warnings = [re.sub(r"\s+", " ", line).strip() for line in lines if line.startswith("Warning")]
    return errors, warnings
