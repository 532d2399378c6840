"""A STOW-RS request whose storing step cannot even start (the worker thread that stores
its parts fails to start: seen with EMFILE under a low descriptor limit) must leave none
of its spooled parts in incoming/, and the node must go on storing. No peer can aim at
that moment, so the thread start is made to fail in this process."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
import requests

from dicom_node.http import stow_routes
from tests.http.support import RELATED, ct_study, inprocess_node, multipart


def test_parts_are_discarded_when_storing_cannot_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = ct_study(tmp_path / "src", n=3)
    body = multipart([f.read_bytes() for f in files])
    with inprocess_node(tmp_path / "node") as node:
        url = f"http://127.0.0.1:{node.config.http.port}/dicomweb/studies"
        headers = {"Content-Type": RELATED.format("b0undary")}
        real = stow_routes.run_in_threadpool

        async def no_thread(*args: object, **kwargs: object) -> object:
            raise OSError(errno.EMFILE, "Too many open files")

        monkeypatch.setattr(stow_routes, "run_in_threadpool", no_thread)
        r = requests.post(url, data=body, headers=headers, timeout=30)
        assert r.status_code >= 500
        incoming = Path(node.config.data_dir) / "incoming"
        assert [p for p in incoming.iterdir() if p.stat().st_size] == []
        assert not list((Path(node.config.data_dir) / "instances").rglob("*.dcm"))

        monkeypatch.setattr(stow_routes, "run_in_threadpool", real)
        r = requests.post(url, data=body, headers=headers, timeout=30)
        assert r.status_code == 200, r.text
        assert len(list((Path(node.config.data_dir) / "instances").rglob("*.dcm"))) == 3
