"""Synthetic studies on disk and the node's spool as the tests see them."""

from __future__ import annotations

from pathlib import Path

from dicom_node.synthetic import Patient, iter_ct_series, new_uid, write_files
from tests.support.waiting import wait_until


def make_study(folder: Path, n: int, size: int = 128, seed: int = 7) -> list[Path]:
    """``n`` CT slices of a fresh study written to ``folder``."""
    return write_files(
        iter_ct_series(
            n, Patient(patient_id=f"P{seed}"), rows=size, cols=size, seed=seed, study_uid=new_uid()
        ),
        folder,
    )


def wait_for_stored(data_dir: Path, n: int, timeout: float = 60) -> None:
    """Block until the node with ``data_dir`` holds at least ``n`` stored instances."""
    instances = data_dir / "instances"
    wait_until(
        lambda: instances.exists() and sum(1 for _ in instances.rglob("*.dcm")) >= n,
        timeout=timeout,
        interval=0.01,
    )


def spooled_data(incoming: Path) -> list[Path]:
    """Files in a spool directory that hold data; the empty ones are kept ready for the
    next C-STORE (:mod:`dicom_node.network.spool`)."""
    return [p for p in incoming.iterdir() if p.stat().st_size]
