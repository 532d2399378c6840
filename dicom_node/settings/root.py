"""The root of the configuration file and its loader."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dicom_node.settings.destinations import Destination
from dicom_node.settings.http import HttpSettings
from dicom_node.settings.jobs import JobsSettings, ResultsSettings, WorkerSettings
from dicom_node.settings.models import ModelsSettings
from dicom_node.settings.node import AETitleSettings, LoggingSettings
from dicom_node.settings.routes import RouteRule, validate_references


class ConfigError(Exception):
    """An invalid configuration; ``errors`` holds one ``path: message`` line per problem."""

    def __init__(self, source: str, errors: list[str]) -> None:
        self.source = source
        self.errors = errors
        lines = "\n".join(f"  {e}" for e in errors)
        n = len(errors)
        super().__init__(f"{source}: {n} configuration error{'s' if n != 1 else ''}\n{lines}")


def _default_ae_titles() -> list[AETitleSettings]:
    return [AETitleSettings(ae_title="DICOM_NODE")]


class NodeConfig(BaseModel):
    """Everything a node needs; every field has an embedded default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    data_dir: Path = Path("dicom-node-data")
    database_url: str | None = Field(None, description="None: SQLite file in data_dir")
    bind_address: str = "0.0.0.0"
    port: int = Field(11112, ge=1, le=65535)
    ae_titles: list[AETitleSettings] = Field(default_factory=_default_ae_titles, min_length=1)
    max_associations: int = Field(
        32, ge=1, description="associations at once (those that sent an A-ASSOCIATE-RQ)"
    )
    max_associations_per_peer: int | None = Field(
        None,
        ge=1,
        description="associations at once from one IP address, so that one peer cannot "
        "take every slot; null: half of max_associations (at least 1)",
    )
    max_waiting_connections: int = Field(
        64,
        ge=1,
        description="connections not yet associated; a new one beyond this drops the one "
        "that has waited longest, so idle connections never lock senders out",
    )
    max_pdu_bytes: int = Field(
        1_048_576, ge=0, description="maximum PDU size we receive; 0 means unlimited"
    )
    network_timeout: float = Field(
        60,
        gt=0,
        description="seconds a peer may stay silent, even in the middle of a PDU, "
        "before the association is aborted and its socket closed",
    )
    acse_timeout: float = Field(
        30, gt=0, description="seconds to complete association negotiation (ARTIM)"
    )
    dimse_timeout: float = Field(60, gt=0, description="seconds to wait for a DIMSE message")
    disk_reserve_mb: int = Field(1024, ge=0)
    duplicate_policy: Literal["keep_first", "replace"] = "keep_first"
    logging: LoggingSettings = Field(default_factory=LoggingSettings)
    http: HttpSettings = Field(default_factory=HttpSettings)

    models: ModelsSettings = Field(default_factory=ModelsSettings)
    jobs: JobsSettings = Field(default_factory=JobsSettings)
    results: ResultsSettings = Field(default_factory=ResultsSettings)
    worker: WorkerSettings = Field(default_factory=WorkerSettings)
    routes: list[RouteRule] = Field(default_factory=list)
    destinations: list[Destination] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ae_titles(self) -> NodeConfig:
        seen: set[str] = set()
        for title in (a.ae_title for a in self.ae_titles):
            if title in seen:
                raise ValueError(f"ae_titles: duplicate ae_title {title!r}")
            seen.add(title)
        if self.http.web_source.ae_title in seen:
            raise ValueError(
                f"http.web_source.ae_title {self.http.web_source.ae_title!r} "
                "is also a DIMSE AE title"
            )
        return self

    def associations_per_peer(self) -> int:
        """The most associations one IP address may hold at once."""
        if self.max_associations_per_peer is not None:
            return self.max_associations_per_peer
        return max(1, self.max_associations // 2)

    def ae(self, title: str) -> AETitleSettings | None:
        """The settings of called AE ``title`` (blank padding ignored), or ``None``."""
        title = title.strip()
        return next((a for a in self.ae_titles if a.ae_title == title), None)

    def source(self, title: str) -> AETitleSettings | None:
        """The grouping settings of a source: a called AE title or the web source."""
        web = self.http.web_source
        return web if title.strip() == web.ae_title else self.ae(title)


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(root)"


def format_validation_errors(err: ValidationError) -> list[str]:
    """``path.to[1].field: message`` for every error pydantic found."""
    lines = []
    for e in err.errors():
        msg = e["msg"]
        if msg.startswith("Value error, "):
            msg = msg[len("Value error, ") :]
        lines.append(f"{_loc(tuple(e['loc']))}: {msg}")
    return lines


ModelNames = Callable[[NodeConfig], Iterable[str]]


def _each_valid(data: dict[str, Any]) -> tuple[list[RouteRule | None], list[Any]]:
    """Routes and destinations of a file that failed validation, each item on its own:
    a valid route, or ``None``; a destination's name wherever it has one."""
    routes: list[RouteRule | None] = []
    raw_routes = data.get("routes")
    for item in raw_routes if isinstance(raw_routes, list) else []:
        try:
            routes.append(RouteRule.model_validate(item))
        except ValidationError:
            routes.append(None)
    raw_dests = data.get("destinations")
    dests = [
        SimpleNamespace(name=d["name"])
        if isinstance(d, dict) and isinstance(d.get("name"), str)
        else None
        for d in (raw_dests if isinstance(raw_dests, list) else [])
    ]
    return routes, dests


def _known_models(
    cfg: NodeConfig | None, data: dict[str, Any], models: ModelNames
) -> set[str] | None:
    """The model names ``models`` finds for this file's ``models:`` section and data dir;
    ``None`` when those sections are themselves invalid (reported on their own)."""
    if cfg is None:
        try:
            cfg = NodeConfig.model_validate(
                {k: data[k] for k in ("data_dir", "models") if k in data}
            )
        except ValidationError:
            return None
    return set(models(cfg))


def validate_config(
    data: Any,
    source: str = "<config>",
    models: ModelNames | Collection[str] | None = None,
) -> NodeConfig:
    """Validate an already-parsed mapping; raise ConfigError listing every error.

    Field errors and cross-references (route names, destinations, route models) are
    reported together, each with its path. ``models`` says which model names routes may
    use: a function giving those a configuration provides (the file's own ``models:``
    section; not checked when its ``jobs.executor`` is celery: workers provide the models
    then), or the names themselves (a reload: those the running node has), or ``None``
    (not checked).
    """
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(source, [f"(root): must be a mapping, got {type(data).__name__}"])
    errors: list[str] = []
    cfg: NodeConfig | None = None
    try:
        cfg = NodeConfig.model_validate(data)
    except ValidationError as err:
        errors += format_validation_errors(err)
    if callable(models):  # the names this file's models section provides
        # executor: celery: the workers provide the models, not this configuration; a
        # job for a model no worker has waits (visibly) rather than being refused here.
        celery = cfg is not None and cfg.jobs.executor == "celery"
        models = None if celery else _known_models(cfg, data, models)
    routes, dests = (cfg.routes, cfg.destinations) if cfg is not None else _each_valid(data)
    errors += validate_references(routes, dests, models)
    if errors or cfg is None:
        raise ConfigError(source, errors)
    return cfg


MAX_YAML_VALUES = 100_000  # values a configuration may expand to (aliases included)


def parse_config_text(text: str, source: str) -> Any:
    """The YAML document in ``text`` (``yaml.safe_load``: no Python tags); ConfigError for
    a syntax error, nesting deeper than PyYAML's recursive parser reaches, a value Python
    will not convert (an integer of over 4300 digits) and more than
    :data:`MAX_YAML_VALUES` values once aliases are followed (an alias bomb)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "?"
        problem = getattr(err, "problem", None) or str(err)
        raise ConfigError(source, [f"YAML syntax error at {where}: {problem}"]) from None
    except RecursionError:
        raise ConfigError(source, ["YAML nested too deeply to be read"]) from None
    except ValueError as err:
        raise ConfigError(source, [f"YAML value cannot be read: {err}"]) from None
    _count_values(data, source)
    return data


def _count_values(document: Any, source: str) -> None:
    """ConfigError if ``document`` holds more than :data:`MAX_YAML_VALUES` values as a
    validator walks it (each use of an alias anew; a list holding itself for ever).
    Iterative: nesting costs no recursion."""
    budget, pending = MAX_YAML_VALUES, [document]
    while pending:
        value = pending.pop()
        budget -= 1
        if budget < 0:
            raise ConfigError(
                source,
                [f"more than {MAX_YAML_VALUES} values once aliases are expanded (an alias bomb?)"],
            )
        if isinstance(value, dict):
            pending.extend(value.keys())
            pending.extend(value.values())
        elif isinstance(value, list):
            pending.extend(value)


def read_config_data(path: Path) -> dict[str, Any]:
    """Parse the YAML file ``path`` (no validation; :func:`parse_config_text`); syntax
    errors name file and line."""
    path = Path(path)
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as err:
        reason = getattr(err, "strerror", None) or err
        raise ConfigError(str(path), [f"cannot read: {reason}"]) from None
    data = parse_config_text(text, str(path))
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(str(path), [f"(root): must be a mapping, got {type(data).__name__}"])
    return data


def load_config(path: Path | None, models: ModelNames | None = None) -> NodeConfig:
    """Load and validate ``path``; ``None`` gives the embedded defaults. With ``models``
    the names routes use are checked too (see :func:`validate_config`)."""
    if path is None:
        return validate_config({}, "defaults", models)
    return validate_config(read_config_data(Path(path)), str(path), models)


def keep_running(
    new: NodeConfig, running: NodeConfig, paths: Iterable[str]
) -> tuple[NodeConfig, list[str]]:
    """``new`` with each setting of ``paths`` (a field, or a dotted path such as
    ``jobs.workers``) that differs from ``running`` set back to its running value, and
    those paths: what only a restart applies keeps its running value until then."""
    changed = [p for p in paths if _setting(new, p) != _setting(running, p)]
    for path in changed:
        new = _with_setting(new, path.split("."), _setting(running, path))
    return new, changed


def _setting(model: BaseModel, path: str) -> Any:
    for part in path.split("."):
        model = getattr(model, part)
    return model


def _with_setting(model: Any, parts: list[str], value: Any) -> Any:
    head, *rest = parts
    inner = _with_setting(getattr(model, head), rest, value) if rest else value
    return model.model_copy(update={head: inner})
