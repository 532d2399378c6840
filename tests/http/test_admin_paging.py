"""Every list the admin API returns comes in pages (a bounded default limit, a maximum,
an offset, the total), on a running node: a study of thousands of instances, jobs or
results, a job of thousands of deliveries, is not one huge answer."""

from __future__ import annotations

from pathlib import Path

import requests

from dicom_node.db import Database, sqlite_url
from dicom_node.http.admin.common import (
    ATTEMPT_RESPONSES,
    DESTINATION_STATUS,
    DESTINATIONS,
    JOB_ATTEMPTS,
    JOB_OUTPUTS,
    JOBS,
    MODELS,
    STUDIES,
    STUDY_GROUPS,
    STUDY_JOBS,
    STUDY_RESULTS,
)
from dicom_node.http.admin.studies import INSTANCES_DEFAULT, INSTANCES_MAX
from dicom_node.jobs.models import DeliveryAttempt, DeliveryResponse, Job, JobOutput
from tests.support.groups import add_group
from tests.support.index import query
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


def _add_jobs(
    node: NodeProcess, group_id: int, study: str, jobs: int, outputs: int = 0
) -> list[int]:
    """``jobs`` finished jobs of the group in the node's own index (done: no worker takes
    them), the first with ``outputs`` results; their ids."""
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))
    try:
        with db.session() as s:
            rows = [
                Job(
                    group_id=group_id,
                    rule_name=f"rule-{i}",
                    action="infer",
                    study_uid=study,
                    state="done",
                )
                for i in range(jobs)
            ]
            s.add_all(rows)
            s.flush()
            s.add_all(
                JobOutput(
                    job_id=rows[0].id,
                    kind="forward",
                    sop_class_uid="1.2.840.10008.5.1.4.1.1.7",
                    sop_instance_uid=f"{study}.7.{i}",
                    path=f"/nowhere/{i}.dcm",
                )
                for i in range(outputs)
            )
            return [j.id for j in rows]
    finally:
        db.dispose()


def _add_attempts(node: NodeProcess, job_id: int, attempts: int, responses: int) -> None:
    """``attempts`` delivery attempts of the job, each to its own destination, the first
    with ``responses`` responses."""
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))
    try:
        with db.session() as s:
            rows = [
                DeliveryAttempt(job_id=job_id, destination=f"paged-{i:03d}", outcome="transient")
                for i in range(attempts)
            ]
            s.add_all(rows)
            s.flush()
            s.add_all(
                DeliveryResponse(
                    attempt_id=rows[0].id, sop_instance_uid=f"1.2.3.{i}", outcome="delivered"
                )
                for i in range(responses)
            )
    finally:
        db.dispose()


def _pages(url: str, key: str | None, page: int, **params: object) -> tuple[list, int]:
    """Every item of a paged list, ``page`` at a time, and the total each page gave (all
    the same). ``key``: the list inside an object (its total ``key_total``); ``None``: a
    top-level array (its total in X-Total-Count)."""
    items: list = []
    totals = set()
    offset_name = "offset" if key is None else f"{key}_offset"
    limit_name = "limit" if key is None else f"{key}_limit"
    while True:
        q = {**params, limit_name: page, offset_name: len(items)}
        r = requests.get(url, params=q, timeout=30)
        assert r.status_code == 200, r.text
        body = r.json()
        if key is None:
            got, total = body, int(r.headers["X-Total-Count"])
        else:
            got, total = body[key], body[f"{key}_total"]
            assert body[f"{key}_offset"] == len(items)
        assert len(got) <= page
        totals.add(total)
        items += got
        if not got:
            break
    assert len(totals) == 1, totals
    return items, totals.pop()


def test_a_study_pages_its_groups_jobs_and_results(node: NodeProcess, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.4243"
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))
    try:
        groups = [
            add_group(db, tmp_path, state="routed", n=1, study=study, age_days=i / 1000)[0]
            for i in range(STUDY_GROUPS.default + 2)
        ]
    finally:
        db.dispose()
    jobs = _add_jobs(node, groups[0], study, STUDY_JOBS.default + 3, STUDY_RESULTS.default + 4)
    url = f"{node.http_url}/api/studies/{study}"

    first = requests.get(url, timeout=30).json()
    assert len(first["groups"]) == STUDY_GROUPS.default
    assert len(first["jobs"]) == STUDY_JOBS.default
    assert len(first["results"]) == STUDY_RESULTS.default
    assert first["groups_total"] == len(groups)
    assert first["jobs_total"] == len(jobs)
    assert first["results_total"] == STUDY_RESULTS.default + 4

    seen_groups, _ = _pages(url, "groups", 7)
    assert sorted(g["id"] for g in seen_groups) == groups
    seen_jobs, _ = _pages(url, "jobs", 10)
    assert [j["id"] for j in seen_jobs] == jobs  # each once, in id order
    seen_results, _ = _pages(url, "results", 100)
    assert len({o["sop_instance_uid"] for o in seen_results}) == STUDY_RESULTS.default + 4

    for name, paging in (
        ("groups", STUDY_GROUPS),
        ("jobs", STUDY_JOBS),
        ("results", STUDY_RESULTS),
    ):
        for bad in ({f"{name}_limit": 0}, {f"{name}_limit": paging.maximum + 1}):
            assert requests.get(url, params=bad, timeout=30).status_code == 422, bad
        r = requests.get(url, params={f"{name}_offset": -1}, timeout=30)
        assert r.status_code == 422


def test_a_job_pages_its_outputs_attempts_and_responses(node: NodeProcess, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.4244"
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))
    try:
        group, _ = add_group(db, tmp_path, state="routed", n=1, study=study)
    finally:
        db.dispose()
    [job] = _add_jobs(node, group, study, 1, JOB_OUTPUTS.default + 5)
    n_attempts, n_responses = JOB_ATTEMPTS.default + 6, ATTEMPT_RESPONSES.default + 8
    _add_attempts(node, job, n_attempts, n_responses)
    url = f"{node.http_url}/api/jobs/{job}"

    first = requests.get(url, timeout=30).json()
    assert (len(first["outputs"]), first["outputs_total"]) == (
        JOB_OUTPUTS.default,
        JOB_OUTPUTS.default + 5,
    )
    attempts = first["delivery_attempts"]
    assert (len(attempts), first["delivery_attempts_total"]) == (JOB_ATTEMPTS.default, n_attempts)
    assert (len(attempts[0]["responses"]), attempts[0]["responses_total"]) == (
        ATTEMPT_RESPONSES.default,
        n_responses,
    )
    assert all(a["responses_total"] == 0 for a in attempts[1:])

    outputs, _ = _pages(url, "outputs", 100)
    assert len({o["sop_instance_uid"] for o in outputs}) == JOB_OUTPUTS.default + 5
    every, _ = _pages(url, "delivery_attempts", 9)
    assert [a["destination"] for a in every] == [f"paged-{i:03d}" for i in range(n_attempts)]
    responses: list[str] = []
    while True:  # the first attempt's responses, 50 at a time
        params = {"delivery_attempts_limit": 1, "responses_limit": 50}
        body = requests.get(url, params={**params, "responses_offset": len(responses)}, timeout=30)
        [attempt] = body.json()["delivery_attempts"]
        assert attempt["responses_total"] == n_responses
        assert attempt["responses_offset"] == len(responses)
        if not attempt["responses"]:
            break
        responses += [r["sop_instance_uid"] for r in attempt["responses"]]
    assert responses == [f"1.2.3.{i}" for i in range(n_responses)]
    for bad in (
        {"outputs_limit": JOB_OUTPUTS.maximum + 1},
        {"delivery_attempts_limit": JOB_ATTEMPTS.maximum + 1},
        {"responses_limit": ATTEMPT_RESPONSES.maximum + 1},
        {"responses_offset": -1},
    ):
        assert requests.get(url, params=bad, timeout=30).status_code == 422, bad


def test_the_top_level_lists_come_in_pages(node: NodeProcess, tmp_path: Path) -> None:
    study = "1.2.826.0.1.3680043.8.498.4245"
    db = Database(sqlite_url(node.data_dir / "index.sqlite"))
    try:
        group, _ = add_group(db, tmp_path, state="routed", n=1, study=study)
    finally:
        db.dispose()
    [job] = _add_jobs(node, group, study, 1)
    _add_attempts(node, job, DESTINATION_STATUS.default + 3, 0)
    api = f"{node.http_url}/api"

    for path, paging, table in (
        ("studies", STUDIES, "groups"),
        ("jobs", JOBS, "jobs"),
    ):
        [(count,)] = query(node.data_dir, f"SELECT count(*) FROM {table}")
        r = requests.get(f"{api}/{path}", timeout=30)
        assert int(r.headers["X-Total-Count"]) == count
        assert len(r.json()) == min(count, paging.default)
        items, total = _pages(f"{api}/{path}", None, 3)
        assert total == count and len({i["id"] for i in items}) == count
    failed, total = _pages(f"{api}/jobs", None, 5, state="failed")
    assert (
        total
        == len(failed)
        == query(node.data_dir, "SELECT count(*) FROM jobs WHERE state = 'failed'")[0][0]
    )

    # Destinations on record (no configured one): each of the attempts' names.
    r = requests.get(f"{api}/destinations/status", timeout=30)
    assert len(r.json()) == DESTINATION_STATUS.default
    known = int(r.headers["X-Total-Count"])
    assert known >= DESTINATION_STATUS.default + 3
    status, total = _pages(f"{api}/destinations/status", None, 7)
    assert total == known and len({d["name"] for d in status}) == known

    for path in ("destinations", "models"):
        r = requests.get(f"{api}/{path}", params={"limit": 1, "offset": 0}, timeout=30)
        assert r.status_code == 200 and int(r.headers["X-Total-Count"]) == 0, r.text
    for path, paging in (
        ("studies", STUDIES),
        ("jobs", JOBS),
        ("destinations", DESTINATIONS),
        ("destinations/status", DESTINATION_STATUS),
        ("models", MODELS),
    ):
        for bad in ({"limit": 0}, {"limit": paging.maximum + 1}, {"offset": -1}):
            r = requests.get(f"{api}/{path}", params=bad, timeout=30)
            assert r.status_code == 422, (path, bad, r.text)


def test_the_openapi_document_describes_every_page(node: NodeProcess) -> None:
    spec = requests.get(f"{node.http_url}/api/openapi.json", timeout=30).json()
    lists = {
        "/api/studies": {"": STUDIES},
        "/api/jobs": {"": JOBS},
        "/api/destinations": {"": DESTINATIONS},
        "/api/destinations/status": {"": DESTINATION_STATUS},
        "/api/models": {"": MODELS},
        "/api/studies/{study}": {
            "groups_": STUDY_GROUPS,
            "jobs_": STUDY_JOBS,
            "results_": STUDY_RESULTS,
        },
        "/api/jobs/{job_id}": {
            "outputs_": JOB_OUTPUTS,
            "delivery_attempts_": JOB_ATTEMPTS,
            "responses_": ATTEMPT_RESPONSES,
        },
    }
    for path, pages in lists.items():
        get = spec["paths"][path]["get"]
        params = {p["name"]: p["schema"] for p in get["parameters"]}
        for prefix, paging in pages.items():
            limit, offset = params[f"{prefix}limit"], params[f"{prefix}offset"]
            assert (limit["default"], limit["maximum"]) == (paging.default, paging.maximum), path
            assert (limit["minimum"], offset["minimum"], offset["default"]) == (1, 0, 0), path
        if "" in pages:
            assert "X-Total-Count" in get["responses"]["200"]["headers"], path
    schemas = spec["components"]["schemas"]
    for model, keys in (
        ("StudyDetail", ("groups", "jobs", "results")),
        ("JobDetail", ("outputs", "delivery_attempts")),
    ):
        for key in keys:
            assert {f"{key}_total", f"{key}_offset"} <= set(schemas[model]["required"])
    assert {"responses_total", "responses_offset"} <= set(schemas["AttemptOut"]["required"])
