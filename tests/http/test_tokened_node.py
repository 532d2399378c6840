"""One node with tokens of every role, /health and /ready closed, and a models_dir
holding the demo package next to a broken one: readiness, access and the models API."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from tests.http.support import failing
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
        "web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1},
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
