"""The rule engine: every matcher, rule order, continue, discard, forward, no-match reasons."""

from __future__ import annotations

from typing import Any

import pytest

from dicom_node import synthetic
from dicom_node.routing.engine import evaluate, evaluate_rule
from dicom_node.routing.facts import GroupFacts, InstanceFacts
from dicom_node.settings.routes import RouteRule

CR = "1.2.840.10008.5.1.4.1.1.1"
CT = "1.2.840.10008.5.1.4.1.1.2"


def inst(uid: str, **kw: Any) -> InstanceFacts:
    base: dict[str, Any] = dict(
        sop_class_uid=CR,
        series_uid="S1",
        modality="CR",
        body_part="CHEST",
        series_description="Chest PA",
        view_position="PA",
        image_type=("ORIGINAL", "PRIMARY"),
        rows=2048,
        columns=2048,
    )
    base.update(kw)
    return InstanceFacts(sop_instance_uid=uid, **base)


def group(*instances: InstanceFacts, called: str = "NODE", calling: str = "PACS") -> GroupFacts:
    return GroupFacts(instances, called_ae=called, calling_ae=calling, key="study-1")


def rule(match: dict | None = None, **kw: Any) -> RouteRule:
    data: dict[str, Any] = {"name": kw.pop("name", "r"), "models": ["m"], "match": match or {}}
    data.update(kw)
    return RouteRule.model_validate(data)


# --- each matcher: one passing case, one failing case with the actual value ------------

MATCHERS = [
    # (match, passing instance kwargs, failing instance kwargs, condition, actual text)
    ({"modality": ["dx", "cr"]}, {"modality": "cr"}, {"modality": "CT"}, "match.modality", "CT"),
    (
        {"sop_class": "ComputedRadiographyImageStorage"},
        {},
        {"sop_class_uid": CT},
        "match.sop_class",
        CT,
    ),
    (
        {"body_part": "chest"},
        {"body_part": "Chest"},
        {"body_part": ""},
        "match.body_part",
        "(empty)",
    ),
    (
        {"series_description": r"^chest\b"},
        {"series_description": "CHEST PA"},
        {"series_description": "Abdomen"},
        "match.series_description",
        "'Abdomen'",
    ),
    (
        {"view_position": ["pa", "AP"]},
        {"view_position": "AP"},
        {"view_position": "LL"},
        "match.view_position",
        "LL",
    ),
    (
        {"image_type": ["original", "PRIMARY"]},
        {"image_type": ("ORIGINAL", "PRIMARY", "")},
        {"image_type": ("DERIVED", "PRIMARY")},
        "match.image_type",
        "DERIVED\\PRIMARY",
    ),
    ({"min_rows": 1024}, {"rows": 1024}, {"rows": 512}, "match.min_rows", "512"),
    ({"min_columns": 1024}, {"columns": 4096}, {"columns": None}, "match.min_columns", "(empty)"),
]


@pytest.mark.parametrize(
    ("match", "good", "bad", "condition", "actual"), MATCHERS, ids=[m[3] for m in MATCHERS]
)
def test_instance_matchers(match: dict, good: dict, bad: dict, condition: str, actual: str) -> None:
    r = rule(match)
    chosen, failure = evaluate_rule(r, group(inst("1", **good)))
    assert failure is None and [i.sop_instance_uid for i in chosen] == ["1"]
    chosen, failure = evaluate_rule(r, group(inst("2", **bad)))
    assert chosen == [] and failure is not None
    assert failure.condition == condition
    assert failure.actual == actual


@pytest.mark.parametrize("field", ["called_ae", "calling_ae"])
def test_ae_matchers_are_exact(field: str) -> None:
    value = "NODE" if field == "called_ae" else "PACS"
    assert evaluate_rule(rule({field: [value, "OTHER"]}), group(inst("1")))[1] is None
    # AE titles compare exactly (after trimming): a lower-case title is another AE
    _, failure = evaluate_rule(rule({field: value.lower()}), group(inst("1")))
    assert failure is not None and failure.condition == f"match.{field}"
    assert failure.actual == value
    _, failure = evaluate_rule(rule({field: "X"}), group(inst("1"), called="", calling=""))
    assert failure is not None and failure.actual == "(unknown)"


def test_instance_conditions_narrow_and_the_group_matches_if_any_instance_does() -> None:
    g = group(
        inst("1", modality="CT", sop_class_uid=CT, series_uid="S2"),
        inst("2"),
        inst("3", view_position="LL"),
    )
    chosen, failure = evaluate_rule(rule({"modality": "CR", "view_position": "PA"}), g)
    assert failure is None and [i.sop_instance_uid for i in chosen] == ["2"]
    # the first failing condition reports the values of the candidates left before it
    _, failure = evaluate_rule(rule({"modality": "CR", "view_position": "AP"}), g)
    assert failure is not None and failure.condition == "match.view_position"
    assert failure.actual == "LL, PA" and failure.expected == "AP"


def test_instance_counts_count_matching_instances() -> None:
    g = group(*(inst(str(i)) for i in range(3)), inst("ct", modality="CT"))
    assert evaluate_rule(rule({"modality": "CR", "min_instances": 3}), g)[1] is None
    _, failure = evaluate_rule(rule({"modality": "CR", "min_instances": 4}), g)
    assert failure is not None and failure.condition == "match.min_instances"
    assert failure.actual == "3 matching instance(s)"
    _, failure = evaluate_rule(rule({"max_instances": 3}), g)
    assert failure is not None and failure.condition == "match.max_instances"
    assert failure.actual == "4 matching instance(s)"


def test_select_view_positions_is_an_ordered_preference() -> None:
    r = rule(select={"view_positions": ["PA", "AP"]})
    g = group(
        inst("lat", view_position="LL"),
        inst("ap", view_position="AP"),
        inst("pa", view_position="pa"),
    )
    assert [i.sop_instance_uid for i in evaluate_rule(r, g)[0]] == ["pa"]
    g = group(inst("lat", view_position="LL"), inst("ap", view_position="AP"))
    assert [i.sop_instance_uid for i in evaluate_rule(r, g)[0]] == ["ap"]
    _, failure = evaluate_rule(r, group(inst("lat", view_position="LL")))
    assert failure is not None and failure.condition == "select.view_positions"
    assert failure.actual == "LL"


def test_select_series_with_most_instances_and_max_instances() -> None:
    g = group(
        inst("a1", series_uid="A"),
        inst("b1", series_uid="B"),
        inst("b2", series_uid="B"),
        inst("a2", series_uid="A"),
        inst("b3", series_uid="B"),
    )
    chosen, _ = evaluate_rule(rule(select={"series": "most_instances"}), g)
    assert [i.sop_instance_uid for i in chosen] == ["b1", "b2", "b3"]
    chosen, _ = evaluate_rule(rule(select={"series": "most_instances", "max_instances": 2}), g)
    assert [i.sop_instance_uid for i in chosen] == ["b1", "b2"]
    chosen, _ = evaluate_rule(rule(), g)
    assert len(chosen) == 5


def test_first_match_wins_and_later_rules_are_not_evaluated() -> None:
    rules = [
        rule({"modality": "CT"}, name="ct"),
        rule(
            {"modality": "CR"}, name="cxr", models=["cxr-a"], destinations=["pacs"], priority="stat"
        ),
        rule({}, name="catch-all"),
    ]
    result = evaluate(rules, group(inst("1"), inst("2")))
    assert [d.rule for d in result.decisions] == ["cxr"]
    d = result.decisions[0]
    assert (d.rule_index, d.action, d.models, d.destinations, d.priority) == (
        1,
        "infer",
        ("cxr-a",),
        ("pacs",),
        "stat",
    )
    assert d.instance_uids == ("1", "2") and d.series_uids == ("S1",)
    assert [(t.rule, t.status) for t in result.trace] == [
        ("ct", "failed"),
        ("cxr", "matched"),
        ("catch-all", "not evaluated"),
    ]
    assert result.no_match_reason is None


def test_continue_lets_later_rules_match_too() -> None:
    rules = [
        rule(
            {"modality": "CR"},
            name="archive",
            action="forward",
            models=[],
            destinations=["vna"],
            **{"continue": True},
        ),
        rule({"modality": "CT"}, name="ct"),
        rule({"body_part": "CHEST"}, name="cxr", models=["cxr-a"]),
        rule({}, name="after"),
    ]
    result = evaluate(rules, group(inst("1")))
    assert [(d.rule, d.action) for d in result.decisions] == [
        ("archive", "forward"),
        ("cxr", "infer"),
    ]
    assert result.decisions[0].models == () and result.decisions[0].destinations == ("vna",)
    assert [t.status for t in result.trace] == ["matched", "failed", "matched", "not evaluated"]


def test_discard_stops_evaluation_and_is_a_decision() -> None:
    rules = [
        rule({"image_type": "DERIVED"}, name="drop-derived", action="discard", models=[]),
        rule({}, name="all"),
    ]
    result = evaluate(rules, group(inst("1", image_type=("DERIVED", "SECONDARY"))))
    assert [(d.rule, d.action) for d in result.decisions] == [("drop-derived", "discard")]
    assert result.matched and result.trace[1].status == "not evaluated"
    result = evaluate(rules, group(inst("1")))
    assert [d.rule for d in result.decisions] == ["all"]


def test_disabled_rules_are_skipped() -> None:
    rules = [rule({}, name="off", enabled=False), rule({"modality": "CT"}, name="ct")]
    result = evaluate(rules, group(inst("1")))
    assert not result.matched
    assert [t.status for t in result.trace] == ["disabled", "failed"]
    assert result.no_match_reason == (
        "no rule matched: 'off' disabled; 'ct' match.modality: expected CT, got CR"
    )


def test_no_match_reasons() -> None:
    result = evaluate([], group(inst("1")))
    assert not result.matched
    assert result.no_match_reason == "no rule matched: no routes configured"
    rules = [rule({"calling_ae": "MODALITY1"}, name="a"), rule({"min_rows": 4096}, name="b")]
    result = evaluate(rules, group(inst("1")))
    assert result.no_match_reason == (
        "no rule matched: 'a' match.calling_ae: expected MODALITY1, got PACS; "
        "'b' match.min_rows: expected >= 4096, got 2048"
    )
    assert evaluate([rule(name="x")], GroupFacts(())).no_match_reason == (
        "no rule matched: 'x' instances: expected at least one instance, got none"
    )


def test_facts_from_synthetic_datasets() -> None:
    dx = synthetic.make_dx(rows=64, cols=48, view="AP")
    del dx.ViewPosition  # view from View Code Sequence when View Position is absent
    facts = InstanceFacts.from_dataset(dx, path="/x.dcm")
    assert facts.view_position == "AP"
    assert (facts.modality, facts.body_part, facts.rows, facts.columns) == ("DX", "CHEST", 64, 48)
    assert facts.image_type == ("ORIGINAL", "PRIMARY", "")
    assert facts.sop_class_uid == synthetic.DX_IMAGE_FOR_PRESENTATION
    assert str(facts.path) == "/x.dcm"
    g = GroupFacts.from_datasets([synthetic.make_cr(rows=32, cols=32), dx], called_ae="N")
    assert len(g.series()) == 2 and g.called_ae == "N"
