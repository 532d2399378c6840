"""config/routes.example.yaml validates and its references resolve."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import TypeAdapter

from dicom_node.routing.engine import evaluate
from dicom_node.routing.facts import GroupFacts, InstanceFacts
from dicom_node.settings.destinations import Destination
from dicom_node.settings.routes import RouteRule, validate_references

EXAMPLE = Path(__file__).resolve().parents[2] / "config" / "routes.example.yaml"


def test_example_sections_validate_and_route_a_chest_xray() -> None:
    data = yaml.safe_load(EXAMPLE.read_text())
    routes = TypeAdapter(list[RouteRule]).validate_python(data["routes"])
    dests = TypeAdapter(list[Destination]).validate_python(data["destinations"])
    assert validate_references(routes, dests) == []
    assert [d.kind for d in dests] == ["dimse", "stowrs", "orthanc"]
    cxr = [
        InstanceFacts(
            "lat",
            modality="DX",
            body_part="CHEST",
            series_description="Chest",
            view_position="LL",
            image_type=("ORIGINAL", "PRIMARY"),
            rows=2000,
            columns=2000,
        ),
        InstanceFacts(
            "ap",
            modality="DX",
            body_part="CHEST",
            series_description="Chest",
            view_position="AP",
            image_type=("ORIGINAL", "PRIMARY"),
            rows=2000,
            columns=2000,
        ),
    ]
    ed = evaluate(routes, GroupFacts(tuple(cxr), calling_ae="ED_DR1"))
    assert [(d.rule, d.priority, d.instance_uids) for d in ed.decisions] == [
        ("archive-ed", "routine", ("lat", "ap")),
        ("cxr-ed", "stat", ("ap",)),
    ]
    ward = evaluate(routes, GroupFacts(tuple(cxr), calling_ae="WARD"))
    assert [(d.rule, d.destinations) for d in ward.decisions] == [("cxr", ("pacs", "pacs-web"))]
