"""Header values that cost the node CPU out of proportion to their size, against a
running node: the ``Content-Type`` of a STOW-RS request and the ``Accept`` of a WADO-RS
one, each within ``http.max_header_kb``. Python's ``email`` parameter parser (what the
node used) rescans the header from its start for each ``;`` inside a quoted value, so
60 kB of them took 5-9 s of CPU per request, on the event loop for STOW-RS. The CPU
time the node spends on a request is read from ``/proc`` (not wall time)."""

from __future__ import annotations

import os
from pathlib import Path

import pydicom
import requests

from dicom_node.http.media_type import parse, parse_list
from tests.http.support import ct_study, multipart, post, stow_leftovers
from tests.support.node_process import NodeProcess

SEMICOLONS = 60_000  # inside one quoted value: the head stays under 64 kB


def _cpu_seconds(node: NodeProcess) -> float:
    """User and system CPU time of the node process so far."""
    fields = Path(f"/proc/{node.pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_a_stow_content_type_of_many_semicolons_costs_no_cpu(node: NodeProcess) -> None:
    before = _cpu_seconds(node)
    r = post(
        node,
        b"--b0undary--\r\n",
        content_type='multipart/related; type="' + ";" * SEMICOLONS + '"; boundary=b0undary',
    )
    assert r.status_code == 415, r.text[:300]
    assert r.headers["content-type"] == "application/problem+json"
    assert _cpu_seconds(node) - before < 1.0  # 5-9 s before
    assert stow_leftovers(node) == []


def test_a_frames_accept_of_many_semicolons_costs_no_cpu(node: NodeProcess, tmp_path: Path) -> None:
    dicom = ct_study(tmp_path, n=1, seed=401)[0]
    ds = pydicom.dcmread(dicom)
    assert post(node, multipart([dicom.read_bytes()])).status_code == 200
    url = (
        f"{node.http_url}/dicomweb/studies/{ds.StudyInstanceUID}/series/"
        f"{ds.SeriesInstanceUID}/instances/{ds.SOPInstanceUID}/frames/1"
    )
    before = _cpu_seconds(node)
    accept = 'multipart/related; type="' + ";" * SEMICOLONS + '"'
    r = requests.get(url, headers={"Accept": accept}, timeout=60)
    assert r.status_code == 406, r.text[:300]
    assert _cpu_seconds(node) - before < 1.0
    ok = requests.get(url, headers={"Accept": 'multipart/related; type="*/*"'}, timeout=60)
    assert ok.status_code == 200


def test_media_types_are_parsed_as_rfc_9110_has_them() -> None:
    ctype = parse('Multipart/Related; TYPE="application/dicom"; boundary="a \\"b\\", c"; b=2')
    assert ctype.type == "multipart/related"
    assert ctype.get_param("type") == "application/dicom"
    assert ctype.get_param("Boundary") == 'a "b", c'
    assert parse("multipart/related; boundary=x; boundary=y").get_param("boundary") == "x"
    assert parse('multipart/related; type="unterminated').get_param("type") == "unterminated"
    ranges = parse_list(
        'multipart/related; type="image/jpeg,x"; transfer-syntax=*, , image/png ;q=0.5'
    )
    assert [r.type for r in ranges] == ["multipart/related", "*/*", "image/png"]
    assert ranges[0].params == {"type": "image/jpeg,x", "transfer-syntax": "*"}
    assert ranges[2].get_param("q") == "0.5"
