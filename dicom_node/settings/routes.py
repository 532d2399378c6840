"""``routes:`` section: ordered routing rules.

A rule has a ``match:`` block (every condition given must hold; an empty block matches
everything), an ``action`` (``infer`` models, only ``forward`` the images, or ``discard``),
the ``destinations`` for what it produces, a ``priority`` and a ``select:`` block saying
which of the matched images to use. Rules are evaluated in order; the first match wins
unless the rule says ``continue: true``. See docs/routing.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["MatchSpec", "RouteRule", "SelectSpec", "resolve_sop_class", "validate_references"]

_UID_RE = re.compile(r"^(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*))*$")


@lru_cache(maxsize=1)
def _sop_keywords() -> dict[str, str]:
    from pydicom._uid_dict import UID_dictionary

    return {
        entry[4].lower(): uid
        for uid, entry in UID_dictionary.items()
        if entry[1] == "SOP Class" and entry[4]
    }


def resolve_sop_class(value: str) -> str:
    """A SOP Class UID from a UID or a pydicom keyword (``CRImageStorage``)."""
    value = value.strip()
    if _UID_RE.match(value) and len(value) <= 64:
        return value
    uid = _sop_keywords().get(value.lower())
    if uid is None:
        raise ValueError(f"{value!r} is neither a UID nor a known SOP class keyword")
    return uid


def _as_list(value: Any) -> Any:
    """Accept a single value where a list is expected."""
    if value is None or isinstance(value, list):
        return value
    if isinstance(value, tuple | set):
        return list(value)
    return [value]


def _upper_list(values: list[str] | None) -> list[str] | None:
    if values is None:
        return None
    out = [str(v).strip().upper() for v in values]
    if not out:
        raise ValueError("must not be an empty list (leave the key out to match anything)")
    return out


class MatchSpec(BaseModel):
    """Conditions on a group; every condition given must hold.

    AE titles compare exactly (after trimming spaces); code-string values (modality,
    body part, view position, image type) compare case-insensitively; a list means
    "any of these". ``series_description`` is a regular expression searched
    case-insensitively. Instance-level conditions select the instances they hold for;
    ``min_instances``/``max_instances`` count those instances.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    called_ae: list[str] | None = None
    calling_ae: list[str] | None = None
    modality: list[str] | None = None
    sop_class: list[str] | None = None
    body_part: list[str] | None = None
    series_description: str | None = None
    view_position: list[str] | None = None
    image_type: list[str] | None = Field(
        None, description="Values that must all be present in Image Type (0008,0008)."
    )
    min_rows: int | None = Field(None, ge=1)
    min_columns: int | None = Field(None, ge=1)
    min_instances: int | None = Field(None, ge=1)
    max_instances: int | None = Field(None, ge=1)

    @field_validator(
        "called_ae",
        "calling_ae",
        "modality",
        "sop_class",
        "body_part",
        "view_position",
        "image_type",
        mode="before",
    )
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("called_ae", "calling_ae")
    @classmethod
    def _ae(cls, values: list[str] | None) -> list[str] | None:
        from dicom_node.settings.destinations import validate_ae_title

        return None if values is None else [validate_ae_title(v) for v in values]

    @field_validator("modality", "body_part", "view_position", "image_type")
    @classmethod
    def _cs(cls, values: list[str] | None) -> list[str] | None:
        return _upper_list(values)

    @field_validator("sop_class")
    @classmethod
    def _sop(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else [resolve_sop_class(v) for v in values]

    @field_validator("series_description")
    @classmethod
    def _regex(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _counts(self) -> MatchSpec:
        if (
            self.min_instances is not None
            and self.max_instances is not None
            and self.min_instances > self.max_instances
        ):
            raise ValueError("min_instances is greater than max_instances")
        return self


class SelectSpec(BaseModel):
    """Which of the matched instances a rule uses.

    ``view_positions`` is an ordered preference: the instances with the first listed view
    position present are used (``[PA, AP]``: PA images if any, else AP); if none has any
    listed view position the rule does not match. ``series: most_instances`` keeps only
    the series with most matched instances (ties: the lowest Series Instance UID).
    ``max_instances`` keeps at most that many (in path/UID order).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    view_positions: list[str] | None = None
    series: Literal["all", "most_instances"] = "all"
    max_instances: int | None = Field(None, ge=1)

    @field_validator("view_positions", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @field_validator("view_positions")
    @classmethod
    def _cs(cls, values: list[str] | None) -> list[str] | None:
        return _upper_list(values)


class RouteRule(BaseModel):
    """One routing rule (see the module docstring and docs/routing.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str = Field(min_length=1)
    enabled: bool = True
    match: MatchSpec = Field(default_factory=MatchSpec)
    action: Literal["infer", "forward", "discard"] = "infer"
    models: list[str] = Field(default_factory=list, description="Model package names.")
    destinations: list[str] = Field(default_factory=list, description="Destination names.")
    priority: Literal["stat", "routine"] = "routine"
    select: SelectSpec = Field(default_factory=SelectSpec)
    continue_: bool = Field(
        False, alias="continue", description="Go on evaluating later rules after a match."
    )

    @field_validator("action", "priority", mode="before")
    @classmethod
    def _lower(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("models", "destinations", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        return _as_list(value)

    @model_validator(mode="after")
    def _action_fields(self) -> RouteRule:
        if self.action == "infer" and not self.models:
            raise ValueError("action 'infer' needs at least one model in 'models'")
        if self.action == "forward":
            if not self.destinations:
                raise ValueError("action 'forward' needs at least one destination")
            if self.models:
                raise ValueError("action 'forward' runs no models; remove 'models'")
        if self.action == "discard":
            if self.models or self.destinations:
                raise ValueError("action 'discard' takes no 'models' or 'destinations'")
            if self.continue_:
                raise ValueError("action 'discard' ends evaluation; 'continue' is not allowed")
        return self


def validate_references(
    routes: Sequence[RouteRule | None],
    destinations: Sequence[Any],
    models: Iterable[str] | None = None,
) -> list[str]:
    """Cross-section checks the root config runs besides validating each section.

    Returns error strings with paths, e.g. ``routes[2].destinations[0]: unknown
    destination 'X'``; empty when all is well. Checks: route names unique, destination
    names unique, every route destination exists, and (when ``models`` — the names of the
    configured model packages — is given) every route model exists. A ``None`` entry (an
    item whose own fields are invalid) is skipped; the others keep their index.
    """
    errors: list[str] = []
    seen_dest: dict[str, int] = {}
    for i, dest in enumerate(destinations):
        if dest is None:
            continue
        name = dest.name
        if name in seen_dest:
            errors.append(
                f"destinations[{i}].name: duplicate destination name {name!r} "
                f"(also destinations[{seen_dest[name]}])"
            )
        else:
            seen_dest[name] = i
    seen_route: dict[str, int] = {}
    known_models = None if models is None else set(models)
    for i, rule in enumerate(routes):
        if rule is None:
            continue
        if rule.name in seen_route:
            errors.append(
                f"routes[{i}].name: duplicate route name {rule.name!r} "
                f"(also routes[{seen_route[rule.name]}])"
            )
        else:
            seen_route[rule.name] = i
        for j, dest_name in enumerate(rule.destinations):
            if dest_name not in seen_dest:
                errors.append(f"routes[{i}].destinations[{j}]: unknown destination {dest_name!r}")
        if known_models is not None:
            for j, model in enumerate(rule.models):
                if model not in known_models:
                    errors.append(f"routes[{i}].models[{j}]: unknown model {model!r}")
    return errors
