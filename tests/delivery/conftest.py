"""Shared test data for delivery tests: small synthetic files (CR, CT, RLE CR)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom.uid import ImplicitVRLittleEndian, RLELossless

from dicom_node import synthetic


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Fresh UIDs per session: 'cr' (1), 'ct' (2), 'rle' (1 RLE CR), 'implicit' (1 CR)."""
    root = tmp_path_factory.mktemp("sendfiles")
    study = synthetic.new_uid()
    cr = synthetic.make_cr(rows=64, cols=64, study_uid=study, seed=11)
    ct = list(synthetic.iter_ct_series(2, rows=32, cols=32, study_uid=study, seed=12))
    rle = synthetic.make_cr(rows=64, cols=64, study_uid=study, seed=13)
    rle.compress(RLELossless)
    implicit = synthetic.make_cr(rows=64, cols=64, study_uid=study, seed=14)
    implicit.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
    return {
        "cr": synthetic.write_files([cr], root / "cr"),
        "ct": synthetic.write_files(ct, root / "ct"),
        "rle": synthetic.write_files([rle], root / "rle"),
        "implicit": synthetic.write_files([implicit], root / "implicit"),
    }
