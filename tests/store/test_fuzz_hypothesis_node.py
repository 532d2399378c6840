"""Generated datasets, valid and corrupted (tests/store/strategies.py), sent over real
associations to a real node process: the node answers exactly what the structural check
documents (Success for a valid dataset, 0xC210 for a StructureError, 0xA900 for a
PixelDataMismatch); an instance answered Success is indexed and its file holds the bytes
sent, which pydicom reads back (a valid one re-encodes to the same bytes); a refused one
leaves nothing. Afterwards the node answers C-ECHO, nothing is left in incoming/, and its
RSS (within 30 MB), fds and threads are back near their baseline.

About 14 fixed examples per group of corruptions in CI; ``pytest --long`` many fresh
ones (tests/support/hypo.py).
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.uid import SecondaryCaptureImageStorage

from dicom_node.network.spool import dataset_offset
from dicom_node.store.check import PixelDataMismatch, StructureError, check_dataset
from dicom_node.synthetic import new_uid
from tests.network import probe
from tests.store import strategies as gen
from tests.store.support import write_part10
from tests.support.hypo import budget
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
STATUS = {None: 0x0000, StructureError: 0xC210, PixelDataMismatch: 0xA900}


@pytest.fixture(scope="module")
def fuzz_node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    work = tmp_path_factory.mktemp("hypo")
    (work / "tmp").mkdir()
    node = NodeProcess(work, {"models": {"bundled": False}}, env={"TMPDIR": str(work / "tmp")})
    with node:
        yield node


@pytest.fixture(scope="module")
def fuzz_baseline(fuzz_node: NodeProcess) -> tuple[int, int, int]:
    """RSS (kB), fds and threads of the module's node once warm."""
    return probe.baseline(fuzz_node)


def _identity() -> Dataset:
    """The attributes the node indexes by, with fresh UIDs."""
    ds = Dataset()
    ds.SOPClassUID, ds.SOPInstanceUID = SecondaryCaptureImageStorage, new_uid()
    ds.StudyInstanceUID, ds.SeriesInstanceUID = new_uid(), new_uid()
    ds.PatientID, ds.Modality = "HYPO", "OT"
    return ds


# Each run draws from one group of corruptions, so that every status is reached in CI
# whatever Hypothesis draws: the group, its corruptions, the Pixel Data it needs, the
# status it must reach at least once.
GROUPS = {
    "valid": (("none",), None, 0x0000),
    "malformed": (("truncate", "lie", "vr"), None, 0xC210),
    "short_pixels": (("short_pixels",), "native", 0xA900),
}


def _corrupt(data: st.DataObject, enc: gen.Encoded, allowed: tuple[str, ...]) -> bytes:
    """The body unchanged, or corrupted after the identifying attributes (so that the
    node can name what it refuses), in one of the ``allowed`` ways this dataset admits."""
    after = 1 + max(i for i, elem in enumerate(enc.ds) if elem.tag <= 0x0020000E)
    kinds = [
        k
        for k in allowed
        if not (k == "vr" and enc.implicit) and not (k == "short_pixels" and not enc.pixel_need)
    ]
    kind = data.draw(st.sampled_from(kinds), label="corruption")
    if kind == "truncate":
        return gen.truncate_inside_an_element(data, enc, after)
    if kind == "lie":
        return gen.lie_about_a_length(data, enc, after)
    if kind == "vr":
        return gen.wrong_vr(data, enc, after)
    if kind == "short_pixels":
        return gen.short_pixels(data, enc)
    return enc.body


def _expected(body: bytes, ts: str) -> int:
    try:
        check_dataset(body, ts)
    except (StructureError, PixelDataMismatch) as err:
        return STATUS[type(err)]
    return STATUS[None]


@pytest.mark.parametrize("group", GROUPS)
def test_generated_datasets_over_real_associations(
    fuzz_node: NodeProcess, fuzz_baseline: tuple[int, int, int], tmp_path: Path, group: str
) -> None:
    node = fuzz_node
    rss0, fds0, threads0 = fuzz_baseline
    seen: set[int] = set()
    allowed, pixels, reached = GROUPS[group]

    @budget(ci=14, long=90)  # ~1 s each on a loaded machine; the suite allows 300 s
    @given(st.builds(_identity).flatmap(lambda ds: gen.encoded(ds, pixels)), st.data())
    def send(enc: gen.Encoded, data: st.DataObject) -> None:
        body = _corrupt(data, enc, allowed)
        assume(body)
        sop = enc.ds.SOPInstanceUID
        path = write_part10(enc.ds, tmp_path / "case.dcm", sop, enc.ts, body)
        status = store_file_raw(node.port, path, calling="HYPOTHESIS")
        assert status == _expected(body, enc.ts), node.log()[-2000:]
        seen.add(status)
        rows = query(node.index, "SELECT path FROM instances WHERE sop_instance_uid=:u", u=sop)
        if status != 0:
            assert rows == []
            return
        ((stored,),) = rows
        raw = Path(stored).read_bytes()
        assert raw[dataset_offset(raw[:144]) :] == body  # the bytes sent, as they were sent
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = dcmread(stored)
            for elem in ds.iterall():
                _ = elem.value
        if body == enc.body:  # a valid dataset reads back to the same data elements
            assert gen.encode(ds, enc.ts) == enc.body

    send()
    assert reached in seen  # stored, or refused the way this group's corruptions must be
    assert probe.echo_ok_within(node.port), node.log()[-3000:]
    probe.wait_associations_closed(node)
    assert probe.spool_leftovers(node) == []
    # Back near the baseline once released (as tests/network/test_fuzz_pdus.py)
    assert probe.settle(lambda: probe.fds(node.pid), fds0, 2, 30) <= fds0 + 2
    assert probe.settle(lambda: probe.threads(node.pid), threads0, 2, 30) <= threads0 + 2
    rss = probe.settle(lambda: probe.rss_kb(node.pid), rss0, 30 * 1024)
    assert rss <= rss0 + 30 * 1024, f"RSS {rss - rss0} kB above its baseline"
