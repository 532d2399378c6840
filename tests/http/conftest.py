"""A running node with its HTTP port (helpers to post STOW-RS bodies: tests/http/support.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.node_process import NodeProcess, running_node

HTTP_CONFIG = {
    "ae_titles": [{"ae_title": "DICOM_NODE", "quiet_seconds": 1}],
    "http": {"max_request_mb": 1, "web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1}},
    "models": {"bundled": False},
}


# Package scope: stopped once tests/http is done (an idle node costs CPU until then).
@pytest.fixture(scope="package")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NodeProcess]:
    """One node for the HTTP tests that do not need their own."""
    yield from running_node(tmp_path_factory.mktemp("http-node"), HTTP_CONFIG)
