"""A configuration reload of a running node: SIGHUP (which ``dicom-node config reload``
sends) and ``POST /api/config/reload``.

The file is read again (with the command-line flags of ``serve``) and validated as the
running node will use it. Settings that only a restart applies keep their running values
(``models``, ``jobs.executor``...: ``node._RESTART_KEYS``), so routes may name the models
the node has loaded, not those the file's ``models:`` section would load; and they are
checked unless the *running* executor is celery, whatever the file's says. A file that
cannot apply is refused, each error with its path, and the running configuration stays.
``/api/config/check`` judges a posted file the same way (:func:`validate_for`);
``dicom-node config check``, which has no running node, judges a file on its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dicom_node.memory import refreeze
from dicom_node.settings.root import ConfigError, NodeConfig, validate_config
from dicom_node.settings.routes import RouteRule

if TYPE_CHECKING:
    from dicom_node.node import Node

log = logging.getLogger("dicom_node")
_ONE_AT_A_TIME = threading.Lock()  # a signal and API requests may ask at once

#: What a reload reads: the parsed configuration (not yet validated) and its name.
ConfigSource = Callable[[], tuple[Any, str]]


class NoConfigSource(Exception):
    """The node has no configuration to read again (not started by ``serve``)."""


@dataclass(frozen=True)
class Reloaded:
    """An applied reload: the changed settings only a restart applies, and warnings."""

    restart: list[str]
    warnings: list[str]


def route_models(node: Node) -> frozenset[str] | None:
    """The model names routes may use on the running node: the models it has loaded, or
    ``None`` (not checked) when workers run its jobs (``jobs.executor: celery``)."""
    if node.config.jobs.executor == "celery":
        return None
    return frozenset(node.jobs.registry.models)


def validate_for(node: Node, data: Any, source: str) -> NodeConfig:
    """``data`` validated as a reload of ``node`` would apply it (routes against
    :func:`route_models`); ConfigError listing every error with its path."""
    return validate_config(data, source, models=route_models(node))


def reload(node: Node) -> Reloaded:
    """Read ``node``'s configuration again and apply it to new groups and jobs.
    ConfigError (logged, with every error's path) if it cannot apply: nothing changes."""
    if node.config_source is None:
        raise NoConfigSource("this node has no configuration to read again (not `serve`)")
    with _ONE_AT_A_TIME:
        try:
            data, source = node.config_source()
            new = validate_for(node, data, source)
        except ConfigError as err:
            log.error(
                "configuration reload refused; keeping the running configuration: %s: %s",
                err.source,
                "; ".join(err.errors),
            )
            raise
        restart = node.reload(new)
        warnings = [w.removeprefix("WARNING: ") for w in demo_route_warnings(node)]
    if restart:
        log.warning("these settings changed but apply only after a restart: %s", ", ".join(restart))
    for line in warnings:
        log.warning("%s", line)
    refreeze()  # what the old configuration held is garbage now
    return Reloaded(restart, warnings)


def demo_warnings(rules: Sequence[RouteRule], demo_models: set[str]) -> list[str]:
    """One line per enabled rule that sends a demo model's results to a destination."""
    lines = []
    for rule in rules:
        demo = [m for m in rule.models if m in demo_models]
        if rule.enabled and rule.action == "infer" and demo and rule.destinations:
            lines.append(
                f"WARNING: route {rule.name!r} sends results of the NON-CLINICAL DEMO model "
                f"{', '.join(demo)} (untrained weights) to {', '.join(rule.destinations)}"
            )
    return lines


def demo_route_warnings(node: Node) -> list[str]:
    """:func:`demo_warnings` for the node's current routes and loaded models."""
    demo = {name for name, m in node.jobs.registry.models.items() if m.identity.demo}
    return demo_warnings(node.jobs.rules(), demo)
