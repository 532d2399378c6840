"""Evaluate ordered routing rules over one group.

``evaluate(rules, group)`` returns a :class:`RoutingResult`: the decisions (one per
matched rule: the first match, plus further matches while rules say ``continue``) and a
trace with, for every rule, whether it matched and otherwise the first condition that
failed and the actual value seen. A group no rule matches has no decisions and a
``no_match_reason`` built from the trace, for the job layer to record.

Conditions are checked in a fixed order. Group-level ones (called/calling AE) first;
then instance-level ones, each narrowing the set of candidate instances (a condition
fails when no candidate is left, and the actual values reported are those of the
candidates before it); then the instance counts; then the ``select`` block.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal

from dicom_node.routing.facts import GroupFacts, InstanceFacts
from dicom_node.settings.routes import RouteRule

__all__ = [
    "PRIORITY_ORDER",
    "ConditionFailure",
    "RouteDecision",
    "RoutingResult",
    "RuleTrace",
    "evaluate",
    "evaluate_rule",
]

PRIORITY_ORDER = {"stat": 0, "routine": 1}
"""Lower sorts first: STAT jobs are claimed before routine ones."""

_MAX_SHOWN = 5


@dataclass(frozen=True)
class ConditionFailure:
    """The first condition of a rule that did not hold."""

    condition: str  # e.g. "match.modality"
    expected: str  # e.g. "CR, DX"
    actual: str  # e.g. "CT"

    def __str__(self) -> str:
        return f"{self.condition}: expected {self.expected}, got {self.actual}"


@dataclass(frozen=True)
class RuleTrace:
    """What happened to one rule for one group."""

    index: int
    rule: str
    status: Literal["matched", "failed", "disabled", "not evaluated"]
    failure: ConditionFailure | None = None
    selected: int = 0  # instances selected when matched


@dataclass(frozen=True)
class RouteDecision:
    """A matched rule and what it asks the job layer to do."""

    rule: str
    rule_index: int
    action: Literal["infer", "forward", "discard"]
    models: tuple[str, ...]
    destinations: tuple[str, ...]
    priority: Literal["stat", "routine"]
    instance_uids: tuple[str, ...]  # selected SOP Instance UIDs, in group order
    series_uids: tuple[str, ...]  # their series, first-seen order
    paths: tuple[str, ...] = ()  # their file paths where the facts carried them


@dataclass
class RoutingResult:
    """Decisions for one group plus the per-rule trace."""

    key: str
    decisions: list[RouteDecision] = field(default_factory=list)
    trace: list[RuleTrace] = field(default_factory=list)

    @property
    def matched(self) -> bool:
        """True when at least one rule matched (a discard counts)."""
        return bool(self.decisions)

    @property
    def no_match_reason(self) -> str | None:
        """Why nothing matched (``None`` when something did), for recording."""
        if self.decisions:
            return None
        if not self.trace:
            return "no rule matched: no routes configured"
        parts = []
        for t in self.trace:
            if t.status == "disabled":
                parts.append(f"{t.rule!r} disabled")
            elif t.failure is not None:
                parts.append(f"{t.rule!r} {t.failure}")
        return "no rule matched: " + "; ".join(parts)


@lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern, re.IGNORECASE)


def _show(values: Sequence[object]) -> str:
    """Distinct values, sorted, at most a few, '(empty)' for blanks."""
    distinct = sorted({str(v) if v not in ("", None) else "(empty)" for v in values})
    if not distinct:
        return "(none)"
    shown = ", ".join(distinct[:_MAX_SHOWN])
    if len(distinct) > _MAX_SHOWN:
        shown += f", … ({len(distinct)} values)"
    return shown


InstanceTest = Callable[[InstanceFacts], bool]


def _instance_conditions(rule: RouteRule) -> list[tuple[str, str, InstanceTest, Callable]]:
    """(name, expected text, test, actual-value getter) for the rule's instance conditions."""
    m = rule.match
    conds: list[tuple[str, str, InstanceTest, Callable]] = []
    if m.modality is not None:
        wanted = set(m.modality)
        conds.append(
            (
                "match.modality",
                ", ".join(m.modality),
                lambda i: i.modality.upper() in wanted,
                lambda i: i.modality,
            )
        )
    if m.sop_class is not None:
        classes = set(m.sop_class)
        conds.append(
            (
                "match.sop_class",
                ", ".join(m.sop_class),
                lambda i: i.sop_class_uid in classes,
                lambda i: i.sop_class_uid,
            )
        )
    if m.body_part is not None:
        parts = set(m.body_part)
        conds.append(
            (
                "match.body_part",
                ", ".join(m.body_part),
                lambda i: i.body_part.upper() in parts,
                lambda i: i.body_part,
            )
        )
    if m.series_description is not None:
        rx = _regex(m.series_description)
        conds.append(
            (
                "match.series_description",
                f"/{m.series_description}/",
                lambda i: rx.search(i.series_description) is not None,
                lambda i: repr(i.series_description),
            )
        )
    if m.view_position is not None:
        views = set(m.view_position)
        conds.append(
            (
                "match.view_position",
                ", ".join(m.view_position),
                lambda i: i.view_position.upper() in views,
                lambda i: i.view_position,
            )
        )
    if m.image_type is not None:
        need = set(m.image_type)
        conds.append(
            (
                "match.image_type",
                "contains " + "\\".join(m.image_type),
                lambda i: need <= {v.upper() for v in i.image_type},
                lambda i: "\\".join(i.image_type),
            )
        )
    if m.min_rows is not None:
        min_rows = m.min_rows
        conds.append(
            (
                "match.min_rows",
                f">= {min_rows}",
                lambda i: i.rows is not None and i.rows >= min_rows,
                lambda i: i.rows,
            )
        )
    if m.min_columns is not None:
        min_cols = m.min_columns
        conds.append(
            (
                "match.min_columns",
                f">= {min_cols}",
                lambda i: i.columns is not None and i.columns >= min_cols,
                lambda i: i.columns,
            )
        )
    return conds


def _select(
    rule: RouteRule, candidates: list[InstanceFacts]
) -> tuple[list[InstanceFacts], ConditionFailure | None]:
    sel = rule.select
    if sel.view_positions is not None:
        present = {i.view_position.upper() for i in candidates}
        chosen = next((v for v in sel.view_positions if v in present), None)
        if chosen is None:
            return [], ConditionFailure(
                "select.view_positions",
                "one of " + ", ".join(sel.view_positions),
                _show([i.view_position for i in candidates]),
            )
        candidates = [i for i in candidates if i.view_position.upper() == chosen]
    if sel.series == "most_instances":
        counts: dict[str, int] = {}
        for inst in candidates:
            counts[inst.series_uid] = counts.get(inst.series_uid, 0) + 1
        best = min(counts, key=lambda uid: (-counts[uid], uid))
        candidates = [i for i in candidates if i.series_uid == best]
    if sel.max_instances is not None:
        candidates = candidates[: sel.max_instances]
    return candidates, None


def evaluate_rule(
    rule: RouteRule, group: GroupFacts
) -> tuple[list[InstanceFacts], ConditionFailure | None]:
    """The instances ``rule`` selects from ``group``, or the first condition that failed."""
    m = rule.match
    if m.called_ae is not None and group.called_ae.strip() not in m.called_ae:
        return [], ConditionFailure(
            "match.called_ae", ", ".join(m.called_ae), group.called_ae or "(unknown)"
        )
    if m.calling_ae is not None and group.calling_ae.strip() not in m.calling_ae:
        return [], ConditionFailure(
            "match.calling_ae", ", ".join(m.calling_ae), group.calling_ae or "(unknown)"
        )
    candidates = list(group.instances)
    if not candidates:
        return [], ConditionFailure("instances", "at least one instance", "none")
    for name, expected, test, actual in _instance_conditions(rule):
        kept = [i for i in candidates if test(i)]
        if not kept:
            return [], ConditionFailure(name, expected, _show([actual(i) for i in candidates]))
        candidates = kept
    n = len(candidates)
    if m.min_instances is not None and n < m.min_instances:
        return [], ConditionFailure(
            "match.min_instances", f">= {m.min_instances}", f"{n} matching instance(s)"
        )
    if m.max_instances is not None and n > m.max_instances:
        return [], ConditionFailure(
            "match.max_instances", f"<= {m.max_instances}", f"{n} matching instance(s)"
        )
    return _select(rule, candidates)


def _decision(index: int, rule: RouteRule, chosen: list[InstanceFacts]) -> RouteDecision:
    series: dict[str, None] = {}
    for inst in chosen:
        series.setdefault(inst.series_uid, None)
    return RouteDecision(
        rule=rule.name,
        rule_index=index,
        action=rule.action,
        models=tuple(rule.models),
        destinations=tuple(rule.destinations),
        priority=rule.priority,
        instance_uids=tuple(i.sop_instance_uid for i in chosen),
        series_uids=tuple(series),
        paths=tuple(str(i.path) for i in chosen if i.path is not None),
    )


def evaluate(rules: Sequence[RouteRule], group: GroupFacts) -> RoutingResult:
    """Evaluate ``rules`` in order over ``group`` (first match wins unless ``continue``)."""
    result = RoutingResult(key=group.key)
    stopped = False
    for index, rule in enumerate(rules):
        if stopped:
            result.trace.append(RuleTrace(index, rule.name, "not evaluated"))
            continue
        if not rule.enabled:
            result.trace.append(RuleTrace(index, rule.name, "disabled"))
            continue
        chosen, failure = evaluate_rule(rule, group)
        if failure is not None:
            result.trace.append(RuleTrace(index, rule.name, "failed", failure))
            continue
        result.trace.append(RuleTrace(index, rule.name, "matched", selected=len(chosen)))
        result.decisions.append(_decision(index, rule, chosen))
        stopped = not rule.continue_
    return result
