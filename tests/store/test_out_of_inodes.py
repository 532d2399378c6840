"""A filesystem out of inodes (no new file can be created, though blocks are free) on a
real tmpfs: every C-STORE is answered 0xA700 and the association goes on, as for a disk
full while writing; once files can be created again the node stores as before."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from pynetdicom import AE
from pynetdicom.sop_class import CTImageStorage, Verification

from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.studies import make_study
from tests.support.tmpfs import mounted_tmpfs

pytestmark = pytest.mark.peer

OUT_OF_RESOURCES = 0xA700


@pytest.fixture
def few_inodes(tmp_path: Path) -> Iterator[Path]:
    """A tmpfs of its own with room for 2,000 files (needs root, as in CI)."""
    with mounted_tmpfs(tmp_path / "fs", "size=64m,nr_inodes=2000") as mnt:
        yield mnt


def _use_every_inode(folder: Path) -> None:
    folder.mkdir()
    n = 0
    while True:
        try:
            (folder / str(n)).touch()
        except OSError:
            return
        n += 1


def _store_all(port: int, files: list[Path]) -> tuple[list[int | None], bool]:
    """The statuses of C-STOREs of ``files`` on one association, and whether it was still
    established after them (and a C-ECHO on it succeeded)."""
    ae = AE(ae_title="INODES")
    ae.add_requested_context(CTImageStorage, "1.2.840.10008.1.2.1")
    ae.add_requested_context(Verification)
    assoc = ae.associate("127.0.0.1", port, ae_title="DICOM_NODE")
    assert assoc.is_established
    statuses: list[int | None] = []
    for f in files:
        if not assoc.is_established:
            break
        rsp = assoc.send_c_store(f)
        statuses.append(int(rsp.Status) if "Status" in rsp else None)  # None: aborted
    went_on = assoc.is_established and int(assoc.send_c_echo().Status) == 0
    if assoc.is_established:
        assoc.release()
    return statuses, went_on


def test_no_inode_left_answers_out_of_resources_and_keeps_the_association(
    tmp_path: Path, few_inodes: Path
) -> None:
    files = make_study(tmp_path / "src", 4, size=64, seed=71)
    node = NodeProcess(
        tmp_path / "node",
        {"data_dir": str(few_inodes / "data"), "models": {"bundled": False}},
    ).start()
    filler = few_inodes / "filler"
    try:
        _use_every_inode(filler)  # before the first C-STORE: no spool file is ready yet
        statuses, went_on = _store_all(node.port, files)
        # no A-ABORT for a spool file that could not be created: 0xA700 as for a disk
        # full while writing, and the association goes on
        assert statuses == [OUT_OF_RESOURCES] * len(files), node.log()[-3000:]
        assert went_on
        # a stop that cannot write its clean-stop marker still stops in order
        assert node.stop() == 0, node.log()[-3000:]
        assert "cannot mark the stop as clean" in node.log()
    finally:
        node.stop()
        shutil.rmtree(filler)
    node.start()  # files can be created again (it reconciles: the stop was not marked)
    try:
        assert _store_all(node.port, files) == ([0] * len(files), True)
        assert query(few_inodes / "data", "SELECT count(*) FROM instances")[0][0] == len(files)
    finally:
        assert node.stop() == 0, node.log()[-3000:]
