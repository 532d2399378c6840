"""Validation of the routes: and destinations: sections and their cross-references."""

from __future__ import annotations

import pytest
from pydantic import TypeAdapter, ValidationError

from dicom_node.settings.destinations import (
    BasicAuth,
    BearerAuth,
    DestinationAdapter,
    DimseDestination,
    OrthancDestination,
    StowRsDestination,
)
from dicom_node.settings.routes import RouteRule, validate_references

ROUTES = TypeAdapter(list[RouteRule])


def test_serve_destination_flag_shape_validates() -> None:
    d = DestinationAdapter.validate_python(
        {"name": "PACS", "kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": 4242}
    )
    assert isinstance(d, DimseDestination)
    assert (d.ae_title, d.host, d.port, d.calling_ae_title) == (
        "PACS",
        "127.0.0.1",
        4242,
        "DICOM_NODE",
    )
    assert d.timeout == 30.0


def test_destination_kinds_and_auth() -> None:
    s = DestinationAdapter.validate_python(
        {
            "name": "web",
            "kind": "stowrs",
            "url": "https://pacs/dicom-web/",
            "auth": {"token": "t0k"},
        }
    )
    assert isinstance(s, StowRsDestination) and isinstance(s.auth, BearerAuth)
    assert s.url == "https://pacs/dicom-web"
    assert "t0k" not in repr(s)
    o = DestinationAdapter.validate_python(
        {
            "name": "o",
            "kind": "orthanc",
            "url": "http://127.0.0.1:8042",
            "auth": {"username": "u", "password": "p"},
            "timeout": 5,
        }
    )
    assert isinstance(o, OrthancDestination) and isinstance(o.auth, BasicAuth)
    assert o.auth.password.get_secret_value() == "p"


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({"name": "x", "kind": "dimse", "ae_title": "A" * 17, "host": "h", "port": 1}, "ae_title"),
        ({"name": "x", "kind": "dimse", "ae_title": "A", "host": "h", "port": 70000}, "port"),
        ({"name": "x", "kind": "dimse", "ae_title": "A", "host": "h", "port": 1, "tls": 1}, "tls"),
        ({"name": "x", "kind": "stowrs", "url": "ftp://x"}, "url"),
        ({"name": "x", "kind": "orthanc", "url": "http://x", "auth": {"user": "u"}}, "auth"),
        ({"name": "x", "kind": "smtp"}, "kind"),
    ],
)
def test_bad_destinations_are_refused_naming_the_field(data: dict, where: str) -> None:
    with pytest.raises(ValidationError) as err:
        DestinationAdapter.validate_python(data)
    assert where in str(err.value)


def test_rule_normalises_values() -> None:
    rule = RouteRule.model_validate(
        {
            "name": "cxr",
            "match": {
                "modality": ["cr", "Dx"],
                "body_part": "chest",
                "sop_class": ["ComputedRadiographyImageStorage", "1.2.840.10008.5.1.4.1.1.1.1"],
            },
            "models": "cxr-demo",
            "priority": "STAT",
            "continue": True,
        }
    )
    assert rule.match.modality == ["CR", "DX"]
    assert rule.match.body_part == ["CHEST"]
    assert rule.match.sop_class == ["1.2.840.10008.5.1.4.1.1.1", "1.2.840.10008.5.1.4.1.1.1.1"]
    assert rule.models == ["cxr-demo"] and rule.priority == "stat" and rule.continue_
    assert rule.action == "infer" and rule.select.series == "all"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "a"}, "needs at least one model"),
        ({"name": "a", "action": "forward"}, "needs at least one destination"),
        (
            {"name": "a", "action": "forward", "destinations": ["d"], "models": ["m"]},
            "runs no models",
        ),
        ({"name": "a", "action": "discard", "destinations": ["d"]}, "takes no"),
        ({"name": "a", "action": "discard", "continue": True}, "continue"),
        (
            {"name": "a", "models": ["m"], "match": {"series_description": "(["}},
            "invalid regular expression",
        ),
        ({"name": "a", "models": ["m"], "match": {"sop_class": "NoSuchStorage"}}, "neither a UID"),
        (
            {"name": "a", "models": ["m"], "match": {"min_instances": 3, "max_instances": 2}},
            "greater than",
        ),
        ({"name": "a", "models": ["m"], "match": {"modalty": "CR"}}, "modalty"),
        ({"name": "a", "models": ["m"], "match": {"modality": []}}, "empty list"),
        ({"name": "a", "models": ["m"], "select": {"series": "biggest"}}, "series"),
        ({"name": "a", "models": ["m"], "priority": "urgent"}, "priority"),
    ],
)
def test_bad_rules_are_refused(data: dict, message: str) -> None:
    with pytest.raises(ValidationError) as err:
        RouteRule.model_validate(data)
    assert message in str(err.value)


def test_rule_error_paths_point_at_the_rule() -> None:
    with pytest.raises(ValidationError) as err:
        ROUTES.validate_python(
            [
                {"name": "ok", "models": ["m"]},
                {"name": "bad", "models": ["m"], "match": {"min_rows": 0}},
            ]
        )
    assert err.value.errors()[0]["loc"] == (1, "match", "min_rows")


def test_validate_references() -> None:
    dests = [
        DestinationAdapter.validate_python(d)
        for d in (
            {"name": "pacs", "kind": "dimse", "ae_title": "P", "host": "h", "port": 1},
            {"name": "web", "kind": "stowrs", "url": "http://w"},
            {"name": "pacs", "kind": "orthanc", "url": "http://o"},
        )
    ]
    routes = ROUTES.validate_python(
        [
            {"name": "a", "models": ["m1"], "destinations": ["pacs"]},
            {"name": "b", "action": "forward", "destinations": ["web", "nowhere"]},
            {"name": "a", "models": ["m2"], "destinations": ["X"]},
        ]
    )
    errors = validate_references(routes, dests, models=["m1"])
    assert errors == [
        "destinations[2].name: duplicate destination name 'pacs' (also destinations[0])",
        "routes[1].destinations[1]: unknown destination 'nowhere'",
        "routes[2].name: duplicate route name 'a' (also routes[0])",
        "routes[2].destinations[0]: unknown destination 'X'",
        "routes[2].models[0]: unknown model 'm2'",
    ]
    assert validate_references(routes[:1], dests[:2]) == []
