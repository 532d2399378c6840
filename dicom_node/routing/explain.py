"""``dicom-node route explain``: which rule each series of a folder would match, and why not.

Reads every file under PATH (headers only), groups instances per series, evaluates the
configured rules for each series and reports, for each rule up to the match, the first
condition that failed with the value actually found.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from dicom_node.routing.engine import RoutingResult, evaluate
from dicom_node.routing.facts import (
    GroupFacts,
    UnreadableFile,
    facts_by_series,
    read_instance_facts,
)
from dicom_node.settings.routes import RouteRule

__all__ = ["Explanation", "explain_path", "explanation_to_dict", "render_explanation"]


@dataclass
class Explanation:
    """The routing outcome of each series found under a path."""

    series: list[tuple[GroupFacts, RoutingResult]]
    unreadable: list[UnreadableFile]
    files: int


def _files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    raise FileNotFoundError(f"{path}: no such file or folder")


def explain_path(
    path: Path, rules: Sequence[RouteRule], called_ae: str = "", calling_ae: str = ""
) -> Explanation:
    """Evaluate ``rules`` for every series under ``path`` (a DICOM file or a folder)."""
    files = _files(path)
    good, bad = read_instance_facts(files)
    groups = facts_by_series(good, called_ae=called_ae, calling_ae=calling_ae)
    return Explanation([(g, evaluate(rules, g)) for g in groups], bad, len(files))


def _series_label(group: GroupFacts) -> str:
    first = group.instances[0]
    desc = first.series_description or "(no description)"
    return f"{first.modality or '?'} {desc}\n{len(group.instances)} instance(s)\n{group.key}"


def render_explanation(exp: Explanation, console: Console) -> None:
    """Print the explanation as a rich table (one block of rows per series)."""
    table = Table(title="Routing explanation", show_lines=True)
    table.add_column("Series", overflow="fold")
    table.add_column("#", justify="right")
    table.add_column("Rule")
    table.add_column("Outcome")
    table.add_column("Detail", overflow="fold")
    for group, result in exp.series:
        label = _series_label(group)
        decisions = {d.rule_index: d for d in result.decisions}
        if not result.trace:
            table.add_row(label, "", "", "[red]no rule matched[/red]", "no routes configured")
            continue
        for t in result.trace:
            if t.status == "matched":
                d = decisions[t.index]
                detail = f"{d.action}, {t.selected} instance(s) selected"
                if d.models:
                    detail += f"; models: {', '.join(d.models)}"
                if d.destinations:
                    detail += f"; destinations: {', '.join(d.destinations)}"
                detail += f"; priority: {d.priority}"
                outcome = "[green]MATCHED[/green]"
            elif t.status == "failed":
                outcome, detail = "[yellow]failed[/yellow]", str(t.failure)
            else:
                outcome, detail = f"[dim]{t.status}[/dim]", ""
            table.add_row(label, str(t.index), t.rule, outcome, detail)
            label = ""
        if not result.decisions:
            table.add_row("", "", "", "[red]no rule matched[/red]", "")
    console.print(table)
    for bad in exp.unreadable:
        console.print(f"[red]unreadable[/red] {bad.path}: {bad.reason}")
    console.print(
        f"{exp.files} file(s), {len(exp.series)} series, {len(exp.unreadable)} unreadable"
    )


def explanation_to_dict(exp: Explanation) -> dict[str, Any]:
    """A JSON-ready form of the explanation (for ``--json`` and scripts)."""
    out: list[dict[str, Any]] = []
    for group, result in exp.series:
        first = group.instances[0]
        out.append(
            {
                "series_uid": group.key,
                "modality": first.modality,
                "series_description": first.series_description,
                "instances": len(group.instances),
                "matched": [d.rule for d in result.decisions],
                "decisions": [
                    {
                        "rule": d.rule,
                        "action": d.action,
                        "models": list(d.models),
                        "destinations": list(d.destinations),
                        "priority": d.priority,
                        "instance_uids": list(d.instance_uids),
                    }
                    for d in result.decisions
                ],
                "trace": [
                    {
                        "index": t.index,
                        "rule": t.rule,
                        "status": t.status,
                        "condition": t.failure.condition if t.failure else None,
                        "expected": t.failure.expected if t.failure else None,
                        "actual": t.failure.actual if t.failure else None,
                    }
                    for t in result.trace
                ],
                "no_match_reason": result.no_match_reason,
            }
        )
    return {
        "files": exp.files,
        "series": out,
        "unreadable": [{"path": str(b.path), "reason": b.reason} for b in exp.unreadable],
    }
