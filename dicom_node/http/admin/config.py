"""Configuration: check a posted YAML (every error with its path), reload."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from dicom_node.http.admin.common import PROBLEM, router
from dicom_node.http.app import authorize, body_chunks, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import ConfigCheck, ReloadOut
from dicom_node.node import Node
from dicom_node.reload import NoConfigSource, reload, validate_for
from dicom_node.settings.root import ConfigError, parse_config_text

YAML_BODY = {
    "content": {"application/yaml": {"schema": {"type": "string"}}},
    "required": True,
}


@router.post(
    "/config/check",
    response_model=ConfigCheck,
    openapi_extra={"requestBody": YAML_BODY},
    responses={400: PROBLEM, 413: PROBLEM},
    tags=["configuration"],
)
async def check_config(request: Request) -> ConfigCheck:
    """Validate a posted YAML configuration (at most ``http.max_config_kb``) as a reload
    of this node would (routes may name the models it has loaded): every error with its
    path."""
    authorize(request, "read")
    limit = node_of(request).config.http.max_config_kb * 1024
    data = bytearray()
    async for chunk in body_chunks(request, limit, "a posted configuration (http.max_config_kb)"):
        data += chunk
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Problem(400, "Bad Request", f"the configuration is not UTF-8 text: {err}") from None
    return await run_in_threadpool(_check_yaml, node_of(request), text)


def _check_yaml(node: Node, text: str) -> ConfigCheck:
    source = "posted configuration"
    try:
        validate_for(node, parse_config_text(text, source), source)
    except ConfigError as err:
        return ConfigCheck(valid=False, errors=err.errors)
    return ConfigCheck(valid=True, errors=[])


@router.post(
    "/config/reload",
    response_model=ReloadOut,
    responses={409: PROBLEM, 422: PROBLEM},
    tags=["configuration"],
)
def reload_config(request: Request) -> ReloadOut:
    """Re-read the configuration file, as SIGHUP does, and apply it to new groups and
    jobs. Routes are checked against the models the running node has loaded (settings
    that need a restart, ``models`` and ``jobs.executor`` among them, keep their running
    values until then). A file that cannot apply is refused: 422, every error with its
    path, and the running configuration stays."""
    authorize(request, "admin")
    try:
        done = reload(node_of(request))
    except NoConfigSource as err:
        raise Problem(409, "Conflict", str(err)) from None
    except ConfigError as err:
        raise Problem(
            422,
            "Unprocessable Content",
            f"{err.source} cannot apply ({len(err.errors)} error(s)): the node keeps its "
            "running configuration",
            errors=err.errors,
        ) from None
    return ReloadOut(restart_required=done.restart, warnings=done.warnings)
