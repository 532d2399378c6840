"""One node with tokens of every role, /health and /ready closed, and a models_dir
holding the demo package next to a broken one: readiness, access and the models API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pydicom
import pytest
import requests
import yaml

from tests.http.support import ct_study, failing, multipart, post, stow_leftovers
from tests.support.index import query
from tests.support.node_process import NodeProcess, running_node

READ, WRITE, OTHER_WRITE, ADMIN = "r" * 20, "w" * 20, "v" * 20, "a" * 20
TOKENED = {
    "http": {
        "tokens": [
            {"name": "viewer", "token": READ, "role": "read"},
            {"name": "pacs", "token": WRITE, "role": "write"},
            {"name": "modality", "token": OTHER_WRITE, "role": "write"},
            {"name": "ops", "token": ADMIN, "role": "admin"},
        ],
        "open_health": False,
        "web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1, "allowed_tokens": ["pacs"]},
    },
}


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    workdir = tmp_path_factory.mktemp("tokened")
    models = workdir / "models"
    (models / "broken").mkdir(parents=True)
    (models / "broken" / "model.yaml").write_text("name: broken\n")  # no version, no input…
    cfg = {**TOKENED, "models": {"models_dir": str(models)}}
    yield from running_node(workdir, cfg)


def test_not_ready_with_a_broken_model_package(node: NodeProcess) -> None:
    problems = failing(requests.get(node.http_url + "/ready", headers=auth(READ), timeout=10))
    assert list(problems) == ["models"]
    assert "broken" in problems["models"] and "model.yaml" in problems["models"]


def test_only_allowed_tokens_may_store(node: NodeProcess, tmp_path: Path) -> None:
    """web_source.allowed_tokens: [pacs]. Another write token and an admin token (whose
    role includes write) are refused with a 403 naming the reason; nothing is stored."""
    refused = ct_study(tmp_path / "refused", n=1, seed=1501)[0]
    study = pydicom.dcmread(refused).StudyInstanceUID
    body = multipart([refused.read_bytes()])
    for token, name in ((OTHER_WRITE, "modality"), (ADMIN, "ops")):
        for path in ("/dicomweb/studies", f"/dicomweb/studies/{study}"):
            r = post(node, body, path=path, headers=auth(token))
            assert r.status_code == 403
            assert r.headers["content-type"] == "application/problem+json"
            assert r.json()["detail"] == f"token {name!r} may not store to WEBSRC"
    sql = "SELECT count(*) FROM instances WHERE study_uid = :s"
    assert query(node.data_dir, sql, s=study) == [(0,)]

    allowed = ct_study(tmp_path / "allowed", n=1, seed=1502)[0]
    r = post(node, multipart([allowed.read_bytes()]), headers=auth(WRITE))
    assert r.status_code == 200
    stored = pydicom.dcmread(allowed)
    assert query(node.data_dir, sql, s=stored.StudyInstanceUID) == [(1,)]
    assert query(node.data_dir, sql, s=study) == [(0,)]
    assert stow_leftovers(node) == []  # no part of any request left in incoming/


def test_models_lists_the_loaded_demo_and_the_refused_package(node: NodeProcess) -> None:
    r = requests.get(node.http_url + "/api/models", headers=auth(READ), timeout=10)
    assert r.status_code == 200
    by_status = {m["status"].split(":")[0]: m for m in r.json()}
    assert len(r.json()) == 2 and set(by_status) == {"loaded", "refused"}
    loaded, refused = by_status["loaded"], by_status["refused"]
    assert (loaded["name"], loaded["status"], loaded["demo"]) == (
        "demo-cxr-densenet121",
        "loaded",
        True,
    )
    assert loaded["provider"].endswith("ExecutionProvider")  # ONNX Runtime's name for it
    assert refused["name"].endswith("/broken") and refused["provider"] == ""
    assert refused["status"].startswith("refused: ") and "model.yaml" in refused["status"]


def test_config_check_lists_every_error_with_its_path(node: NodeProcess) -> None:
    posted = (
        "port: 70000\n"
        "ae_titles:\n"
        "  - ae_title: A\n"
        "    quiet_seconds: -1\n"
        "  - ae_title: THIS_AE_TITLE_IS_TOO_LONG\n"
        "http:\n"
        "  max_request_mb: 0\n"
        "  tokens:\n"
        "    - {name: a, token: short, role: boss}\n"
    )
    r = requests.post(
        node.http_url + "/api/config/check",
        data=posted,
        headers={**auth(READ), "Content-Type": "application/yaml"},
        timeout=10,
    )
    assert r.status_code == 200 and r.json()["valid"] is False
    paths = sorted(e.split(": ")[0] for e in r.json()["errors"])
    assert paths == [
        "ae_titles[0].quiet_seconds",
        "ae_titles[1].ae_title",
        "http.max_request_mb",
        "http.tokens[0].role",
        "http.tokens[0].token",
        "port",
    ]


def test_config_check_refuses_routes_to_models_the_node_does_not_run(node: NodeProcess) -> None:
    """As a reload of this node would: routes may name the models it runs (the demo)."""

    def check(routes: list[dict]) -> requests.Response:
        return requests.post(
            node.http_url + "/api/config/check",
            data=yaml.safe_dump({"routes": routes}),
            headers={**auth(READ), "Content-Type": "application/yaml"},
            timeout=10,
        )

    demo = {"name": "cxr", "action": "infer", "models": ["demo-cxr-densenet121"]}
    nowhere = {"name": "elsewhere", "action": "infer", "models": ["nowhere"]}
    r = check([demo, nowhere])
    assert r.status_code == 200, r.text
    assert r.json() == {
        "valid": False,
        "errors": ["routes[1].models[0]: unknown model 'nowhere'"],
    }
    r = check([demo])
    assert r.status_code == 200 and r.json() == {"valid": True, "errors": []}
