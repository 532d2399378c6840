"""Configuration: check a posted YAML (every error with its path), reload."""

from __future__ import annotations

import os
import signal
from typing import Any

import yaml
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from dicom_node.http.admin.common import PROBLEM, router
from dicom_node.http.app import authorize, body_chunks, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    ConfigCheck,
)
from dicom_node.settings.root import ConfigError, validate_config

MAX_YAML_NODES = 100_000  # values a posted configuration may expand to (aliases included)
YAML_BODY = {
    "content": {"application/yaml": {"schema": {"type": "string"}}},
    "required": True,
}


def _yaml_nodes(document: Any) -> None:
    """Count the values of a loaded document as a validator walks it (an alias is walked
    each time it is used, a list or mapping that holds itself for ever); ValueError once
    past :data:`MAX_YAML_NODES`. Iterative: nesting depth costs no recursion."""
    budget, pending = MAX_YAML_NODES, [document]
    while pending:
        value = pending.pop()
        budget -= 1
        if budget < 0:
            raise ValueError(
                f"more than {MAX_YAML_NODES} values once aliases are expanded (an alias bomb?)"
            )
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


@router.post(
    "/config/check",
    response_model=ConfigCheck,
    openapi_extra={"requestBody": YAML_BODY},
    responses={400: PROBLEM, 413: PROBLEM},
    tags=["configuration"],
)
async def check_config(request: Request) -> ConfigCheck:
    """Validate a posted YAML configuration (at most ``http.max_config_kb``): every
    error with its path."""
    authorize(request, "read")
    limit = node_of(request).config.http.max_config_kb * 1024
    data = bytearray()
    async for chunk in body_chunks(request, limit, "a posted configuration (http.max_config_kb)"):
        data += chunk
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise Problem(400, "Bad Request", f"the configuration is not UTF-8 text: {err}") from None
    return await run_in_threadpool(_check_yaml, text)


def _check_yaml(text: str) -> ConfigCheck:
    try:
        document = yaml.safe_load(text)  # safe: no Python tags, no object construction
        _yaml_nodes(document)
        validate_config(document, "posted configuration")
    except yaml.YAMLError as err:
        return ConfigCheck(valid=False, errors=[f"YAML syntax error: {err}"])
    except RecursionError:  # PyYAML's parser and composer recurse once per level
        return ConfigCheck(valid=False, errors=["YAML nested too deeply to be read"])
    except ValueError as err:
        return ConfigCheck(valid=False, errors=[str(err)])
    except ConfigError as err:
        return ConfigCheck(valid=False, errors=err.errors)
    return ConfigCheck(valid=True, errors=[])


@router.post("/config/reload", status_code=202, tags=["configuration"])
def reload_config(request: Request) -> dict[str, str]:
    """Re-read the configuration file, as SIGHUP does (a bad file is refused and logged)."""
    authorize(request, "admin")
    os.kill(os.getpid(), signal.SIGHUP)
    return {"status": "reload requested; the node's log tells the outcome"}
