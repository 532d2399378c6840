"""The admin REST API on a running node: studies, jobs, models, routes, configuration,
destinations (C-ECHO against DCMTK's storescp), roles, problem JSON and OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pydicom
import requests

from dicom_node.synthetic import Patient, make_cr, new_uid, write_files
from tests.http.support import multipart, post
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.ports import free_port
from tests.support.storescp import StoreSCP
from tests.support.waiting import wait_until

READ = {"Authorization": "Bearer " + "r" * 20}
ADMIN = {"Authorization": "Bearer " + "a" * 20}
WRITE = {"Authorization": "Bearer " + "w" * 20}


def test_admin_api(tmp_path: Path) -> None:
    scp = StoreSCP(tmp_path / "scp", ae_title="PACS").start()
    closed = free_port()  # nothing listens there
    cfg = {
        "http": {
            "tokens": [
                {"name": "viewer", "token": "r" * 20, "role": "read"},
                {"name": "pacs", "token": "w" * 20, "role": "write"},
                {"name": "ops", "token": "a" * 20, "role": "admin"},
            ],
            "web_source": {"quiet_seconds": 1},
        },
        "destinations": [
            {
                "name": "pacs",
                "kind": "dimse",
                "ae_title": "PACS",
                "host": "127.0.0.1",
                "port": scp.port,
            },
            {
                "name": "gone",
                "kind": "dimse",
                "ae_title": "GONE",
                "host": "127.0.0.1",
                "port": closed,
            },
        ],
    }
    try:
        with NodeProcess(tmp_path / "node", cfg) as node:
            api = node.http_url + "/api"
            cr = make_cr(
                Patient(patient_id="ADM-1"), rows=256, cols=256, seed=95, study_uid=new_uid()
            )
            files = write_files([cr], tmp_path / "cr")
            assert post(node, multipart([files[0].read_bytes()]), headers=WRITE).status_code == 200
            study = cr.StudyInstanceUID
            # Delivery to "gone" fails (nothing listens): the job ends up failed, to retry.
            wait_until(
                lambda: (
                    query(node.data_dir, "SELECT state FROM jobs WHERE study_uid = :s", s=study)
                    == [("failed",)]
                ),
                timeout=120,
            )

            groups = requests.get(f"{api}/studies", headers=READ, timeout=10).json()
            assert [(g["study_uid"], g["called_ae"], g["modalities"]) for g in groups][-1] == (
                study,
                "DICOMWEB",
                ["CR"],
            )
            routed = requests.get(
                f"{api}/studies", params={"state": "routed"}, headers=READ, timeout=10
            ).json()
            assert study in [g["study_uid"] for g in routed]
            assert all(g["state"] == "routed" for g in routed)
            # A state that does not exist is refused (problem JSON), not an empty list.
            r = requests.get(f"{api}/studies", params={"state": "routd"}, headers=READ, timeout=10)
            assert r.status_code == 422, r.text
            assert r.headers["content-type"].startswith("application/problem+json")
            assert "query.state" in r.text and "unrouted" in r.text  # names the choices
            jobs = requests.get(
                f"{api}/jobs", params={"state": "failed"}, headers=READ, timeout=10
            ).json()
            assert [j["study_uid"] for j in jobs] == [study]
            job = requests.get(f"{api}/jobs/{jobs[0]['id']}", headers=READ, timeout=10).json()
            assert job["stages"]["written"] and {o["kind"] for o in job["outputs"]} >= {"sr"}
            outcomes = {a["destination"]: a["outcome"] for a in job["delivery_attempts"]}
            assert outcomes == {"pacs": "delivered", "gone": "transient"}
            pacs = next(a for a in job["delivery_attempts"] if a["destination"] == "pacs")
            assert {r["code"] for r in pacs["responses"]} == {0}
            missing = requests.get(f"{api}/jobs/99999", headers=READ, timeout=10)
            assert missing.status_code == 404
            assert missing.headers["content-type"] == "application/problem+json"

            # retry/cancel need admin; a cancelled job cannot be cancelled again.
            r = requests.post(f"{api}/jobs/{job['id']}/retry", headers=READ, timeout=10)
            assert r.status_code == 403
            r = requests.post(f"{api}/jobs/{job['id']}/retry", headers=ADMIN, timeout=10)
            assert r.status_code == 202, r.text
            r = requests.post(f"{api}/jobs/{job['id']}/cancel", headers=ADMIN, timeout=10)
            assert r.status_code == 202, r.text
            r = requests.post(f"{api}/jobs/{job['id']}/cancel", headers=ADMIN, timeout=10)
            assert r.status_code == 409 and "already finished" in r.json()["detail"]
            assert query(node.data_dir, "SELECT state FROM jobs WHERE id = :i", i=job["id"]) == [
                ("cancelled",)
            ]

            shown = requests.get(f"{api}/studies/{study}", headers=READ, timeout=10).json()
            assert [i["sop_instance_uid"] for i in shown["instances"]] == [cr.SOPInstanceUID]
            assert [j["id"] for j in shown["jobs"]] == [job["id"]]
            assert {o["sop_instance_uid"] for o in shown["results"]} == {
                o["sop_instance_uid"] for o in job["outputs"]
            }
            assert requests.get(f"{api}/studies/1.2.3", headers=READ, timeout=10).status_code == 404

            # Reprocessing: refused while a job of the study is active, then new jobs.
            r = requests.post(f"{api}/studies/{study}/reprocess", headers=READ, timeout=10)
            assert r.status_code == 403
            r = requests.post(f"{api}/studies/1.2.3/reprocess", headers=ADMIN, timeout=10)
            assert r.status_code == 409 and "no stored instance" in r.json()["detail"]
            r = requests.post(f"{api}/studies/{study}/reprocess", headers=ADMIN, timeout=30)
            assert r.status_code == 202, r.text
            [again] = r.json()
            assert again["state"] == "routed" and len(again["job_ids"]) == 1
            assert again["job_ids"][0] != job["id"]

            r = requests.get(f"{api}/models", headers=READ, timeout=10)
            models = r.json()
            assert models[0]["name"] == "demo-cxr-densenet121" and models[0]["demo"]
            assert int(r.headers["X-Total-Count"]) == len(models) == 1
            past = requests.get(f"{api}/models", params={"offset": 1}, headers=READ, timeout=10)
            assert past.json() == [] and past.headers["X-Total-Count"] == "1"

            explained = requests.get(
                f"{api}/routes/explain", params={"study": study}, headers=READ, timeout=30
            ).json()
            assert explained["series"][0]["matched"] == ["default:demo-cxr-densenet121"]
            assert (
                requests.get(
                    f"{api}/routes/explain", params={"study": "1.2.3"}, headers=READ, timeout=10
                ).status_code
                == 404
            )

            dicom = {"Content-Type": "application/dicom"}
            uploaded = requests.post(
                f"{api}/routes/explain",
                data=files[0].read_bytes(),
                params={"called_ae": "DICOMWEB"},
                headers={**READ, **dicom},
                timeout=30,
            ).json()
            assert uploaded["series"][0]["matched"] == ["default:demo-cxr-densenet121"]
            tested = requests.post(
                f"{api}/models/demo-cxr-densenet121/test",
                data=files[0].read_bytes(),
                headers={**ADMIN, **dicom},
                timeout=60,
            )
            assert tested.status_code == 200, tested.text
            assert tested.json()["model"]["demo"] is True and tested.json()["applies"]
            assert {lab["name"] for lab in tested.json()["labels"]}
            assert (
                requests.post(
                    f"{api}/models/demo-cxr-densenet121/test",
                    data=b"junk",
                    headers={**ADMIN, **dicom},
                    timeout=30,
                ).status_code
                == 400
            )
            assert (
                requests.post(
                    f"{api}/models/nope/test",
                    data=files[0].read_bytes(),
                    headers={**ADMIN, **dicom},
                    timeout=30,
                ).status_code
                == 404
            )

            bad = "ae_titles:\n  - ae_title: A\n    quiet_seconds: -1\n"
            r = requests.post(
                f"{api}/config/check",
                data=bad,
                headers={**READ, "Content-Type": "application/yaml"},
                timeout=10,
            )
            assert r.json()["valid"] is False
            assert any(e.startswith("ae_titles[0].quiet_seconds") for e in r.json()["errors"])
            r = requests.post(
                f"{api}/config/check",
                data="port: 104\n",
                headers={**READ, "Content-Type": "application/yaml"},
                timeout=10,
            )
            assert r.json() == {"valid": True, "errors": []}

            dests = requests.get(f"{api}/destinations", headers=READ, timeout=10).json()
            assert dests[0] == {
                "name": "pacs",
                "kind": "dimse",
                "target": f"PACS@127.0.0.1:{scp.port}",
            }
            r = requests.get(
                f"{api}/destinations", params={"limit": 1, "offset": 1}, headers=READ, timeout=10
            )
            assert [d["name"] for d in r.json()] == ["gone"]
            assert r.headers["X-Total-Count"] == "2"
            ok = requests.post(f"{api}/destinations/pacs/echo", headers=ADMIN, timeout=30)
            assert ok.json() == {
                "destination": "pacs",
                "ok": True,
                "status": 0,
                "detail": "C-ECHO answered",
            }
            down = requests.post(f"{api}/destinations/gone/echo", headers=ADMIN, timeout=30)
            assert down.status_code == 200 and down.json()["ok"] is False
            assert (
                requests.post(
                    f"{api}/destinations/nope/echo", headers=ADMIN, timeout=10
                ).status_code
                == 404
            )

            invalid = requests.get(f"{api}/jobs", params={"limit": "x"}, headers=READ, timeout=10)
            assert invalid.status_code == 422
            assert invalid.headers["content-type"] == "application/problem+json"
            spec = requests.get(
                f"{node.http_url}/api/openapi.json", headers=READ, timeout=10
            ).json()
            assert {"/api/jobs", "/api/jobs/{job_id}/retry", "/api/config/check"} <= set(
                spec["paths"]
            )
            assert not any(p.startswith("/dicomweb") for p in spec["paths"])

            r = requests.post(f"{api}/config/reload", headers=ADMIN, timeout=30)
            assert r.status_code == 200, r.text
            assert r.json()["restart_required"] == []
            [warning] = r.json()["warnings"]  # the demo model's results go to PACS
            assert "NON-CLINICAL DEMO" in warning and "pacs, gone" in warning
            assert "configuration reloaded" in node.log()
            assert pydicom.dcmread(files[0]).StudyInstanceUID == study
    finally:
        scp.stop()
