"""A bounded dataset fuzz suite against a real node (issue 12): seeded mutations of valid
datasets (truncations, wrong VRs and lengths, garbage, deep nesting) sent through
pynetdicom. After each batch the node answers C-ECHO, its RSS (within 30 MB), fds and
threads are back near their baseline, nothing half-written is left in ``incoming/`` or
the index, every index row has its file, and every instance answered Success is indexed
and readable by pydicom while every refused one left nothing.

CI runs a fixed seed and a small budget; ``pytest --long`` (and ``--fuzz-seed N``) runs
many more cases.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import warnings
from pathlib import Path

import pytest
from pydicom import dcmread
from pydicom.data import get_testdata_file
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset
from pydicom.sequence import Sequence
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit
from pynetdicom import AE, _config
from pynetdicom.sop_class import CTImageStorage, SecondaryCaptureImageStorage

from dicom_node.network.spool import READY_FILES
from dicom_node.store.owner import LOCK_FILENAME
from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.network import probe
from tests.store.fuzz import mutate
from tests.store.support import inconsistencies, write_part10
from tests.support.dcmtk import echoscu
from tests.support.index import query
from tests.support.node_process import NodeProcess

pytestmark = pytest.mark.peer

SEED = 1212
ANSWERS = {0x0000, 0xA900, 0xC210, 0xC220}  # 0xA700 would be an internal failure


def _ct(implicit: bool = False, with_sequence: bool = False) -> tuple[Dataset, str]:
    ds = next(iter_ct_series(1, Patient(patient_id="FUZZ"), rows=32, cols=32, study_uid=new_uid()))
    for elem in list(ds):  # room before Pixel Data for spliced sequences
        if 0x0040A730 <= elem.tag < 0x7FE00010:
            del ds[elem.tag]
    if with_sequence:
        item = Dataset()
        item.ReferencedSOPClassUID = CTImageStorage
        item.ReferencedSOPInstanceUID = new_uid()
        inner = Dataset()
        inner.CodeValue, inner.CodingSchemeDesignator, inner.CodeMeaning = "1", "99T", "x"
        item.PurposeOfReferenceCodeSequence = Sequence([inner])
        ds.ReferencedImageSequence = Sequence([item, copy.deepcopy(item)])
    return ds, ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian


def _jpeg() -> tuple[Dataset, str]:
    ds = dcmread(get_testdata_file("SC_rgb_jpeg_gdcm.dcm"))
    ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uid(), new_uid()
    return ds, JPEGBaseline8Bit


def _encode(ds: Dataset, ts: str) -> bytes:
    fp = DicomBytesIO()
    fp.is_little_endian, fp.is_implicit_VR = True, ts == ImplicitVRLittleEndian
    write_dataset(fp, ds)
    return fp.getvalue()


BASES = [lambda: _ct(), lambda: _ct(implicit=True), lambda: _ct(with_sequence=True), _jpeg]


def _readable(path: str) -> None:
    """pydicom reads the file and every value in it."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = dcmread(path)
        for elem in ds.iterall():
            _ = elem.value


def _store_fds(pid: int, data_dir: Path) -> list[str]:
    """Files of the store the node holds open (not sockets, which the PDU suite in
    tests/network watches, nor the index's connections, which its pool keeps, nor the
    data directory's owner lock, held for the node's life)."""
    held = []
    for fd in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):  # closed meanwhile
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if (
                target.startswith(str(data_dir))
                and "/index.sqlite" not in target
                and not target.endswith("/" + LOCK_FILENAME)
            ):
                held.append(target)
    return held


class _Sender:
    """One association at a time, opened again if the node ended it."""

    def __init__(self, port: int) -> None:
        self.port, self.assoc = port, None
        self.ae = AE(ae_title="FUZZER")
        for sop in (CTImageStorage, SecondaryCaptureImageStorage):
            for ts in (ExplicitVRLittleEndian, ImplicitVRLittleEndian, JPEGBaseline8Bit):
                self.ae.add_requested_context(sop, ts)

    def send(self, path: Path) -> int | None:
        if self.assoc is None or not self.assoc.is_established:
            self.assoc = self.ae.associate("127.0.0.1", self.port, ae_title="DICOM_NODE")
            assert self.assoc.is_established
        rsp = self.assoc.send_c_store(path)
        return int(rsp.Status) if "Status" in rsp else None

    def close(self) -> None:
        if self.assoc is not None and self.assoc.is_established:
            self.assoc.release()


def test_fuzzed_datasets_leave_the_node_whole(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    long = request.config.getoption("--long", default=False)
    seed = request.config.getoption("--fuzz-seed", default=None) or SEED
    batches, per_batch = (40, 50) if long else (3, 30)
    rng = random.Random(seed)
    old = _config.STORE_SEND_CHUNKED_DATASET
    _config.STORE_SEND_CHUNKED_DATASET = True  # the file's bytes as they are
    with NodeProcess(tmp_path / "node", {"models": {"bundled": False}}) as proc:
        sender = _Sender(proc.port)
        # Baseline once warm: spool files kept ready, the index's connections open.
        ds, ts = _ct()
        assert sender.send(write_part10(ds, tmp_path / "warm.dcm", ts=ts)) == 0
        sender.close()
        assert echoscu(proc.port, "DICOM_NODE").returncode == 0
        rss0, fds0, threads0 = probe.baseline(proc)
        seen: dict[str, int] = {}
        try:
            for batch in range(batches):
                answered: dict[str, tuple[int | None, str]] = {}
                for case in range(per_batch):
                    ds, ts = rng.choice(BASES)()
                    ds.SOPInstanceUID = sop = new_uid()
                    how, body = mutate(rng, _encode(ds, ts))
                    path = write_part10(ds, tmp_path / "case.dcm", sop, ts, body)
                    status = sender.send(path)
                    answered[sop] = (status, how)
                    assert status in ANSWERS, (seed, batch, case, how, status)
                    seen[how.split("+")[0]] = seen.get(how.split("+")[0], 0) + 1
                sender.close()
                where = f"seed {seed} batch {batch}"
                assert echoscu(proc.port, "DICOM_NODE").returncode == 0, where
                assert inconsistencies(proc) == [], where
                rows = dict(query(proc.index, "SELECT sop_instance_uid, path FROM instances"))
                for sop, (status, how) in answered.items():
                    if status == 0:
                        assert sop in rows, (where, how)
                        _readable(rows[sop])
                    else:
                        assert sop not in rows, (where, how, status)
                # Only the empty spool files kept ready for the next C-STORE stay open.
                held = _store_fds(proc.pid, proc.data_dir)
                assert len(held) <= READY_FILES, (where, held)
                assert all(os.path.getsize(p) == 0 for p in held if os.path.exists(p)), where
                # Back near the baseline once released (as tests/network/test_fuzz_pdus.py)
                assert probe.settle(lambda: probe.fds(proc.pid), fds0, 2, 30) <= fds0 + 2, where
                threads = probe.settle(lambda: probe.threads(proc.pid), threads0, 2, 30)
                assert threads <= threads0 + 2, where
                rss = probe.settle(lambda: probe.rss_kb(proc.pid), rss0, 30 * 1024)
                assert rss <= rss0 + 30 * 1024, (where, rss - rss0)
        finally:
            sender.close()
            _config.STORE_SEND_CHUNKED_DATASET = old
    assert len(seen) == 6  # every kind of mutation ran
