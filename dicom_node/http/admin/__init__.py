"""The admin REST API under ``/api`` (JSON; OpenAPI at ``/api/openapi.json``).

Studies and groups, jobs (list, show, retry, cancel), models, route explanations,
configuration check and reload, destinations with a C-ECHO test. Each route reuses what
the CLI runs (``index.queries``, ``JobQueue``, ``routing.explain``, the configuration
loader); errors are RFC 9457 problem documents.
"""

from __future__ import annotations

from fastapi import FastAPI

# Each module adds its routes to the shared router when imported.
from dicom_node.http.admin import config, destinations, jobs, models, studies  # noqa: F401
from dicom_node.http.admin.common import router


def register(app: FastAPI) -> None:
    """Add the admin API to ``app``."""
    app.include_router(router)
