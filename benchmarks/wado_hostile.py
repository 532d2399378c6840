"""Peak RSS of a node serving hostile stored instances by WADO-RS (issue 15; the figures
in docs/http.md, "Hostile stored files"). Not a timed test: it prints, for each request,
its status and how much the node's peak RSS (VmHWM, reset before each) grew.

    PYTHONPATH=. .venv/bin/python benchmarks/wado_hostile.py

Run it on another checkout (``git worktree add /tmp/old main``, then the same command
there) for the figures before a change. The crafted instances are those of
tests/http/test_hostile_wado.py, stored by C-STORE into a fresh node.
"""

from __future__ import annotations

import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import requests
from pydicom.encaps import encapsulate
from pydicom.uid import DeflatedExplicitVRLittleEndian, ExplicitVRLittleEndian, JPEGBaseline8Bit

from tests.http.test_hostile_wado import (
    _image,
    _jpeg,
    _reset_peak,
    _store,
    _url,
    _write_deflated,
)
from tests.support.node_process import NodeProcess
from tests.support.scu import store_file_raw

CONFIG = {
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
    "models": {"bundled": False},
}
DICOM = 'multipart/related; type="application/dicom"'


def measure(node: NodeProcess, name: str, request: Callable[[], object]) -> None:
    before = _reset_peak(node)
    try:
        outcome = request()
    except requests.RequestException as err:
        outcome = f"client error {type(err).__name__}"
    grown = (node.peak_rss_kb() - before) // 1024
    print(f"{name}: {outcome}; peak RSS +{grown} MB (from {before // 1024} MB)", flush=True)


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        with NodeProcess(tmp / "node", CONFIG) as node:
            bomb = _image(JPEGBaseline8Bit, 8, 8)
            bomb.PixelData = encapsulate([_jpeg(16000, 16000)])
            _store(node, bomb, tmp / "bomb.dcm")
            url = _url(node, bomb)
            measure(
                node,
                "8x8 instance holding a 16000x16000 JPEG, retrieved converted",
                lambda: requests.get(url, headers={"Accept": DICOM}, timeout=300).status_code,
            )
            measure(
                node,
                "the same, rendered",
                lambda: requests.get(url + "/rendered", timeout=300).status_code,
            )
            honest = _image(JPEGBaseline8Bit, 8000, 8000)
            honest.PixelData = encapsulate([_jpeg(8000, 8000)])
            _store(node, honest, tmp / "honest.dcm")

            def convert() -> int:
                return requests.get(
                    _url(node, honest), headers={"Accept": DICOM}, timeout=300
                ).status_code

            measure(node, "8000x8000 JPEG (64 MB decoded), retrieved converted", convert)

            def eight() -> list[int]:
                codes: list[int] = []
                threads = [
                    threading.Thread(target=lambda: codes.append(convert())) for _ in range(8)
                ]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join(600)
                return codes

            measure(node, "8 concurrent converted retrieves of it", eight)
            deflated = _image(ExplicitVRLittleEndian, 16384, 16384, frames=3, bits=16)
            deflated.SOPClassUID = "1.2.840.10008.5.1.4.1.1.7.3"
            deflated.file_meta.MediaStorageSOPClassUID = deflated.SOPClassUID
            deflated.file_meta.TransferSyntaxUID = DeflatedExplicitVRLittleEndian
            _write_deflated(deflated, 3 * 16384 * 16384 * 2, tmp / "deflated.dcm")
            assert store_file_raw(node.port, tmp / "deflated.dcm") == 0
            measure(
                node,
                "Deflated 1.5 GB of pixels (1.5 MB stored), bulk Pixel Data",
                lambda: (
                    requests.get(_url(node, deflated, "/bulk/7FE00010"), timeout=300).status_code
                ),
            )
            big = _image(ExplicitVRLittleEndian, 16384, 16384, bits=16)
            big.PixelData = bytes(16384 * 16384 * 2)
            _store(node, big, tmp / "big.dcm")
            measure(
                node,
                "one native 512 MB frame, frames/1 (bytes received)",
                lambda: len(requests.get(_url(node, big, "/frames/1"), timeout=300).content),
            )


if __name__ == "__main__":
    main()
