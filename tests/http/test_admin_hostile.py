"""The admin API under attack on a running node: posted YAML that nests without end,
uploads that inflate or decode to gigabytes, a C-ECHO to a peer that never answers the
TCP handshake, and a storm of reprocess requests for one study."""

from __future__ import annotations

import io
import socket
import zlib
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from threading import Barrier

import pytest
import requests
import yaml
from pydicom.dataset import Dataset
from pydicom.filebase import DicomBytesIO
from pydicom.filewriter import write_dataset, write_file_meta_info
from pydicom.uid import DeflatedExplicitVRLittleEndian, RLELossless

from dicom_node.synthetic import Patient, make_cr, new_uid, write_files
from tests.http.support import multipart, post, reset_peak
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.slow_scp import SlowStoreSCP
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

READ = {"Authorization": "Bearer " + "r" * 20}
ADMIN = {"Authorization": "Bearer " + "a" * 20}
MODEL = "demo-cxr-densenet121"


@pytest.fixture(scope="module")
def blackhole() -> Iterator[int]:
    """A port whose accept queue is full: the kernel drops further SYNs, so a connect
    hangs as it does towards a host that has gone (a real black hole, no mock)."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(0)
    port = srv.getsockname()[1]
    first = socket.create_connection(("127.0.0.1", port))  # fills the queue
    try:
        yield port
    finally:
        first.close()
        srv.close()


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory, blackhole: int) -> Iterator[NodeProcess]:
    cfg = {
        "http": {
            "tokens": [
                {"name": "viewer", "token": "r" * 20, "role": "read"},
                {"name": "ops", "token": "a" * 20, "role": "admin"},
            ],
            "max_upload_mb": 64,
            "max_decoded_mb": 64,
            "web_source": {"quiet_seconds": 1},
        },
        "destinations": [
            {"name": "hole", "kind": "dimse", "ae_title": "HOLE", "host": "127.0.0.1"}
            | {"port": blackhole, "timeout": 5},
        ],
        "routes": [{"name": "to-hole", "action": "forward", "destinations": ["hole"]}],
    }
    root = Path(__file__).resolve().parents[2]
    with NodeProcess(tmp_path_factory.mktemp("admin-hostile"), cfg, root=root) as n:
        yield n


def _no_traceback(node: NodeProcess) -> None:
    assert "Traceback" not in node.log()


@pytest.mark.parametrize(
    "text",
    [
        "a: &a [*a]\n",  # a list that holds itself
        "[" * 5000 + "]" * 5000,
        "{a: " * 3000 + "1" + "}" * 3000,
    ],
    ids=["self-alias", "deep-list", "deep-mapping"],
)
def test_config_check_refuses_endless_nesting(node: NodeProcess, text: str) -> None:
    r = requests.post(
        node.http_url + "/api/config/check",
        data=text.encode(),
        headers={**READ, "Content-Type": "application/yaml"},
        timeout=30,
    )
    assert r.status_code == 200, r.text
    assert r.json()["valid"] is False
    assert r.json()["errors"]
    _no_traceback(node)


def _cr_header(rows: int, cols: int) -> Dataset:
    ds = make_cr(Patient(patient_id="BOMB"), rows=8, cols=8, seed=5, study_uid=new_uid())
    del ds.PixelData
    ds.Rows, ds.Columns = rows, cols
    return ds


def _explicit_le(ds: Dataset) -> DicomBytesIO:
    """``ds`` encoded in Explicit VR Little Endian (no File Meta)."""
    plain = DicomBytesIO()
    plain.is_little_endian, plain.is_implicit_VR = True, False
    write_dataset(plain, ds)
    return plain


def _part10(ds: Dataset, dataset: bytes) -> bytes:
    """A PS3.10 file of ``ds``'s File Meta and an already encoded ``dataset``."""
    out = io.BytesIO()
    out.write(b"\0" * 128 + b"DICM")
    write_file_meta_info(out, ds.file_meta, enforce_standard=True)
    return out.getvalue() + dataset


def deflate_bomb(pixel_mb: int) -> bytes:
    """A Deflated Explicit VR LE CR whose Pixel Data inflates to ``pixel_mb`` MB of
    zeros (the file itself is about a thousandth of that)."""
    side = int((pixel_mb * 2**20 // 2) ** 0.5)
    ds = _cr_header(side, side)
    ds.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    plain = _explicit_le(ds)  # as a deflated dataset is before deflation
    length = side * side * 2
    plain.write(b"\xe0\x7f\x10\x00OW\0\0" + length.to_bytes(4, "little"))
    deflater = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    body = deflater.compress(plain.getvalue())
    zeros = b"\0" * 2**24
    for start in range(0, length, len(zeros)):
        body += deflater.compress(zeros[: length - start])
    return _part10(ds, body + deflater.flush())


def rle_claiming(rows: int, cols: int) -> bytes:
    """An RLE Lossless CR claiming ``rows`` x ``cols`` 16-bit pixels, in one tiny frame."""
    ds = _cr_header(rows, cols)
    ds.file_meta.TransferSyntaxUID = RLELossless
    plain = _explicit_le(ds)
    header = (2).to_bytes(4, "little") + (64).to_bytes(4, "little") + (66).to_bytes(4, "little")
    frame = header + b"\0" * 52 + b"\x81\0" + b"\x81\0"  # 2 segments: runs of 128 zeros
    item = b"\xfe\xff\x00\xe0" + len(frame).to_bytes(4, "little") + frame
    pixel = b"\xe0\x7f\x10\x00OB\0\0\xff\xff\xff\xff" + b"\xfe\xff\x00\xe0\0\0\0\0" + item
    pixel += b"\xfe\xff\xdd\xe0\0\0\0\0"
    return _part10(ds, plain.getvalue() + pixel)


def many_elements(n: int) -> bytes:
    """A CR with ``n`` 4-byte private elements before its Pixel Data (12 bytes each)."""
    ds = make_cr(Patient(patient_id="MANY"), rows=8, cols=8, seed=6, study_uid=new_uid())
    pixels = ds.PixelData
    del ds.PixelData
    private = b"".join(  # odd groups 6001, 6003...: after every element a CR has
        (0x6001 + 2 * (i // 0xF000)).to_bytes(2, "little")
        + (0x1000 + i % 0xF000).to_bytes(2, "little")
        + b"UL\x04\x00"
        + i.to_bytes(4, "little")
        for i in range(n)
    )
    pixel = b"\xe0\x7f\x10\x00OW\0\0" + len(pixels).to_bytes(4, "little") + pixels
    return _part10(ds, _explicit_le(ds).getvalue() + private + pixel)


def test_upload_with_a_million_elements_is_refused_unread(node: NodeProcess) -> None:
    # 11 MB of elements: pydicom's parse of them grew the node by 360 MB.
    base = reset_peak(node)
    r = requests.post(
        node.http_url + "/api/routes/explain",
        data=many_elements(1_000_000),
        headers={**READ, "Content-Type": "application/dicom"},
        timeout=60,
    )
    grown_mb = (node.peak_rss_kb() - base) / 1024
    assert r.status_code == 413, r.text
    assert "http.max_header_elements" in r.json()["detail"]
    assert grown_mb < 100, f"the node grew by {grown_mb:.0f} MB"
    _no_traceback(node)


@pytest.mark.parametrize(
    "path,headers",
    [("/api/routes/explain", READ), (f"/api/models/{MODEL}/test", ADMIN)],
    ids=["explain", "model-test"],
)
def test_deflate_bomb_upload_stays_bounded(node: NodeProcess, path: str, headers: dict) -> None:
    bomb = deflate_bomb(300)  # 300 MB once inflated, past max_upload_mb (64)
    assert len(bomb) < 2**20
    base = reset_peak(node)
    r = requests.post(
        node.http_url + path,
        data=bomb,
        headers={**headers, "Content-Type": "application/dicom"},
        timeout=60,
    )
    grown_mb = (node.peak_rss_kb() - base) / 1024
    assert r.status_code == 413, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert "inflate" in r.json()["detail"]
    assert grown_mb < 100, f"the node grew by {grown_mb:.0f} MB"
    assert not list((node.data_dir / "incoming").glob("*.upload"))
    _no_traceback(node)


def test_a_deflated_upload_is_inflated_and_run(node: NodeProcess, tmp_path: Path) -> None:
    cr = make_cr(Patient(patient_id="DEFL"), rows=64, cols=64, seed=8, study_uid=new_uid())
    cr.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
    [path] = write_files([cr], tmp_path / "cr")
    r = requests.post(
        f"{node.http_url}/api/models/{MODEL}/test",
        data=path.read_bytes(),
        headers={**ADMIN, "Content-Type": "application/dicom"},
        timeout=60,
    )
    assert r.status_code == 200, r.text
    assert [i["sop_instance_uid"] for i in r.json()["images"]] == [cr.SOPInstanceUID]
    assert len(r.json()["labels"]) > 1


def test_model_test_refuses_pixels_past_the_decode_limit(node: NodeProcess) -> None:
    # 40000 x 40000 16-bit pixels: 3 GB decoded, past max_decoded_mb (64).
    base = reset_peak(node)
    r = requests.post(
        f"{node.http_url}/api/models/{MODEL}/test",
        data=rle_claiming(40000, 40000),
        headers={**ADMIN, "Content-Type": "application/dicom"},
        timeout=60,
    )
    grown_mb = (node.peak_rss_kb() - base) / 1024
    assert r.status_code == 413, r.text
    assert "max_decoded_mb" in r.json()["detail"]
    assert grown_mb < 100, f"the node grew by {grown_mb:.0f} MB"
    _no_traceback(node)


def test_echo_to_a_black_hole_answers(node: NodeProcess) -> None:
    # The destination's timeout (5 s) bounds the connect too: without it the handshake is
    # retried for about 2 minutes.
    r = requests.post(f"{node.http_url}/api/destinations/hole/echo", headers=ADMIN, timeout=45)
    assert r.status_code == 200, r.text
    assert r.json()["ok"] is False


def test_reprocess_storm_queues_one_set_of_jobs(node: NodeProcess, tmp_path: Path) -> None:
    cr = make_cr(Patient(patient_id="STORM"), rows=64, cols=64, seed=9, study_uid=new_uid())
    files = write_files([cr], tmp_path / "cr")
    assert post(node, multipart([files[0].read_bytes()]), headers=ADMIN).status_code == 200
    study = cr.StudyInstanceUID
    jobs_of = "SELECT id, state FROM jobs WHERE study_uid = :s"
    wait_until(lambda: len(query(node.data_dir, jobs_of, s=study)) == 1, timeout=60)
    [(job, _)] = query(node.data_dir, jobs_of, s=study)
    api = node.http_url + "/api"
    assert requests.post(f"{api}/jobs/{job}/cancel", headers=ADMIN, timeout=10).status_code == 202
    # Its new job delivers to the black hole, so it stays active: every later reprocess
    # must be refused (409), however many arrive at once.
    n = 12
    barrier = Barrier(n)

    def reprocess(_: int) -> int:
        barrier.wait()
        return requests.post(
            f"{api}/studies/{study}/reprocess", headers=ADMIN, timeout=60
        ).status_code

    with ThreadPoolExecutor(n) as pool:
        codes = sorted(pool.map(reprocess, range(n)))
    assert codes == [202] + [409] * (n - 1)
    assert len(query(node.data_dir, jobs_of, s=study)) == 2
    _no_traceback(node)


def test_reload_without_tokens_keeps_the_running_ones(tmp_path: Path) -> None:
    # http is a setting "restart to apply"; the reload must not drop the tokens of a
    # server bound where it was bound because there were tokens.
    cfg = {"http": {"tokens": [{"name": "ops", "token": "a" * 20, "role": "admin"}]}}
    root = Path(__file__).resolve().parents[2]
    with NodeProcess(tmp_path / "node", cfg, root=root) as node:
        api = node.http_url + "/api"
        assert requests.get(f"{api}/jobs", timeout=10).status_code == 401
        loaded = yaml.safe_load(node.config_path.read_text())
        loaded["http"].pop("tokens")
        loaded["routes"] = [{"name": "drop-all", "action": "discard"}]
        node.config_path.write_text(yaml.safe_dump(loaded))
        r = requests.post(f"{api}/config/reload", headers=ADMIN, timeout=30)
        assert r.status_code == 200 and r.json()["restart_required"] == ["http"], r.text
        assert "restart to apply: http" in node.log()
        assert requests.get(f"{api}/jobs", timeout=10).status_code == 401
        assert requests.get(f"{api}/jobs", headers=ADMIN, timeout=10).status_code == 200
        explained = requests.post(
            f"{api}/routes/explain",
            data=write_files([make_cr(Patient(), rows=8, cols=8)], tmp_path / "cr")[0].read_bytes(),
            headers={**ADMIN, "Content-Type": "application/dicom"},
            timeout=30,
        ).json()
        assert explained["series"][0]["matched"] == ["drop-all"]  # the routes did apply


def test_cancel_then_retry_while_delivering_delivers_once(tmp_path: Path) -> None:
    # Worker A delivers to "slow" (4 s before it answers) when the job is cancelled and
    # queued again; worker B takes it. A must stop there: it no longer holds the job.
    slow = SlowStoreSCP(tmp_path / "slow", ae_title="SLOW", delay=4).start()
    fast = StoreSCP(tmp_path / "fast", ae_title="FAST").start()
    dests = [("slow", "SLOW", slow.port), ("fast", "FAST", fast.port)]
    cfg = {
        "http": {
            "tokens": [{"name": "ops", "token": "a" * 20, "role": "admin"}],
            "web_source": {"quiet_seconds": 0.5},
        },
        "destinations": [
            {"name": n, "kind": "dimse", "ae_title": ae, "host": "127.0.0.1", "port": p}
            for n, ae, p in dests
        ],
        "routes": [{"name": "both", "action": "forward", "destinations": ["slow", "fast"]}],
    }
    root = Path(__file__).resolve().parents[2]
    try:
        with NodeProcess(tmp_path / "node", cfg, root=root) as node:
            cr = make_cr(Patient(patient_id="TWICE"), rows=32, cols=32, seed=3)
            files = write_files([cr], tmp_path / "cr")
            assert post(node, multipart([files[0].read_bytes()]), headers=ADMIN).status_code == 200
            wait_until(lambda: len(slow.received()) == 1, timeout=60)
            [(job,)] = query(node.data_dir, "SELECT id FROM jobs")
            api = f"{node.http_url}/api/jobs/{job}"
            assert requests.post(f"{api}/cancel", headers=ADMIN, timeout=10).status_code == 202
            assert requests.post(f"{api}/retry", headers=ADMIN, timeout=10).status_code == 202
            state = "SELECT state FROM jobs WHERE id = :j"
            wait_until(lambda: query(node.data_dir, state, j=job) == [("done",)], timeout=60)

            def both_ended() -> bool:  # B's end and A's: done, or stopped once it checks
                log = node.log()
                return log.count(f"job {job} done") + log.count(f"job {job} stopped") >= 2

            wait_until(both_ended, timeout=30)
            sent = "SELECT count(*) FROM delivery_attempts WHERE destination = :d"
            assert query(node.data_dir, sent, d="fast") == [(1,)], node.log()[-3000:]
            assert len(fast.received()) == 1
            _no_traceback(node)
    finally:
        fast.stop()
        slow.stop()


def test_echo_storm_to_a_black_hole_holds_one_thread(node: NodeProcess) -> None:
    # Each echo to the black hole holds a worker thread for the destination's timeout;
    # 40 of them held every thread of the server (health, admin and DICOMweb alike).
    n = 45
    barrier = Barrier(n)

    def echo(_: int) -> int:
        barrier.wait()
        url = f"{node.http_url}/api/destinations/hole/echo"
        return requests.post(url, headers=ADMIN, timeout=60).status_code

    with ThreadPoolExecutor(n) as pool:
        codes = pool.map(echo, range(n))
        health = requests.get(node.http_url + "/api/destinations", headers=READ, timeout=60)
        codes = sorted(codes)
    assert health.status_code == 200
    assert codes == [200] + [409] * (n - 1)
    _no_traceback(node)


def test_reload_of_a_hostile_file_is_refused_and_the_node_runs_on(tmp_path: Path) -> None:
    cfg = {"http": {"tokens": [{"name": "ops", "token": "a" * 20, "role": "admin"}]}}
    root = Path(__file__).resolve().parents[2]
    with NodeProcess(tmp_path / "node", cfg, root=root) as node:
        good = node.config_path.read_text()
        laughs = "".join(
            f"{k}: &{k} [{', '.join([f'*{p}'] * 10)}]\n"
            for p, k in zip("abcdefg", "bcdefgh", strict=True)
        )
        hostile = {
            "a 5000-digit integer": f"max_associations: {'9' * 5000}\n",
            "3000 nested lists": "routes: " + "[" * 3000 + "]" * 3000 + "\n",
            "an alias bomb": "x-a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n" + laughs + "routes: *h\n",
        }
        for n, (what, text) in enumerate(hostile.items(), start=1):
            node.config_path.write_text(good + text)
            r = requests.post(f"{node.http_url}/api/config/reload", headers=ADMIN, timeout=30)
            assert r.status_code == 422, (what, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["errors"], what
            assert node.log().count("configuration reload refused") == n, what
            assert node.proc is not None and node.proc.poll() is None, what
            assert requests.get(f"{node.http_url}/api/jobs", headers=ADMIN, timeout=10).ok
        _no_traceback(node)
