"""`GET /api/studies/{uid}` on a running node: a study's instances come in pages (limit,
offset, the total), so a study of thousands of instances is not one huge answer."""

from __future__ import annotations

from pathlib import Path

import requests

from dicom_node.db import Database, sqlite_url
from dicom_node.http.admin.studies import INSTANCES_DEFAULT, INSTANCES_MAX
from tests.support.groups import add_group
from tests.support.node_process import NodeProcess

STUDY = "1.2.826.0.1.3680043.8.498.4242"


def test_study_instances_come_in_pages(node: NodeProcess, tmp_path: Path) -> None:
    n = INSTANCES_DEFAULT + 7
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))  # the node's own index
    try:
        _, uids = add_group(db, tmp_path, state="routed", n=n, study=STUDY)
    finally:
        db.dispose()
    url = f"{node.http_url}/api/studies/{STUDY}"

    first = requests.get(url, timeout=30).json()
    assert (first["instances_total"], first["instances_offset"]) == (n, 0)
    assert len(first["instances"]) == INSTANCES_DEFAULT
    assert len(first["groups"]) == 1  # the rest of the study is all there

    page = 200
    seen = []
    for offset in range(0, n, page):
        r = requests.get(url, params={"limit": page, "offset": offset}, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["instances_total"], body["instances_offset"]) == (n, offset)
        assert len(body["instances"]) == min(page, n - offset)
        seen += [i["sop_instance_uid"] for i in body["instances"]]
    assert sorted(seen) == sorted(uids)  # each once: a stable order

    past = requests.get(url, params={"offset": n}, timeout=30).json()
    assert (past["instances"], past["instances_total"]) == ([], n)
    for bad in ({"limit": 0}, {"limit": INSTANCES_MAX + 1}, {"offset": -1}):
        r = requests.get(url, params=bad, timeout=30)
        assert r.status_code == 422, (bad, r.text)


def test_the_openapi_document_describes_the_paging(node: NodeProcess) -> None:
    spec = requests.get(f"{node.http_url}/api/openapi.json", timeout=30).json()
    params = {p["name"]: p for p in spec["paths"]["/api/studies/{study}"]["get"]["parameters"]}
    assert params["limit"]["schema"]["maximum"] == INSTANCES_MAX
    assert params["limit"]["schema"]["default"] == INSTANCES_DEFAULT
    assert params["offset"]["schema"]["minimum"] == 0
    detail = spec["components"]["schemas"]["StudyDetail"]
    assert {"instances_total", "instances_offset"} <= set(detail["required"])
