"""Configuration: validation messages with paths, `config check`, serve flags."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from dicom_node.cli import app
from dicom_node.cli.serve import build_config, parse_destination
from dicom_node.settings import ConfigError, NodeConfig, load_config

ROOT = Path(__file__).resolve().parents[2]

BAD = """\
port: 70000
ae_titles:
  - ae_title: NODE_A
  - ae_title: NODE_B
    quiet_seconds: 0
    group_by: patient
    allowed_calling:
      - ae_title: ""
max_associations: 0
duplicate_policy: newest
surprise: true
"""


def test_defaults() -> None:
    cfg = load_config(None)
    assert [a.ae_title for a in cfg.ae_titles] == ["DICOM_NODE"]
    assert (cfg.port, cfg.data_dir, cfg.database_url) == (11112, Path("dicom-node-data"), None)
    assert cfg.max_associations > 10 and cfg.max_pdu_bytes >= 65536
    assert cfg.ae_titles[0].quiet_seconds == 5 and cfg.duplicate_policy == "keep_first"


def test_every_error_listed_with_its_path(tmp_path: Path) -> None:
    f = tmp_path / "node.yaml"
    f.write_text(BAD)
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert str(f) in msg
    for path in (
        "port:",
        "ae_titles[1].quiet_seconds:",
        "ae_titles[1].group_by:",
        "ae_titles[1].allowed_calling[0].ae_title:",
        "max_associations:",
        "duplicate_policy:",
        "surprise:",
    ):
        assert f"\n  {path}" in msg, (path, msg)
    assert len(exc.value.errors) == 7


def test_duplicate_ae_titles_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate ae_title 'X'"):
        from dicom_node.settings.root import validate_config

        validate_config({"ae_titles": [{"ae_title": "X"}, {"ae_title": "X"}]})


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    f = tmp_path / "broken.yaml"
    f.write_text("port: 11112\nae_titles:\n  - ae_title: [A\n")
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    assert str(f) in str(exc.value) and "line 4" in str(exc.value)


def test_config_check_cli(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = CliRunner().invoke(app, ["config", "check", str(bad)])
    assert r.exit_code != 0
    assert "ae_titles[1].quiet_seconds: Input should be greater than 0" in r.output
    good = ROOT / "config" / "node.example.yaml"
    r = CliRunner().invoke(app, ["config", "check", str(good)])
    assert r.exit_code == 0, r.output
    assert "OK" in r.output


def test_example_config_documents_node_keys() -> None:
    text = (ROOT / "config" / "node.example.yaml").read_text()
    for key in NodeConfig.model_fields:
        assert f"{key}:" in text, key
    cfg = load_config(ROOT / "config" / "node.example.yaml")
    assert len(cfg.ae_titles) >= 2


def test_serve_refuses_invalid_config(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(BAD)
    r = CliRunner().invoke(app, ["serve", "--config", str(bad)])
    assert r.exit_code == 2
    assert "ae_titles[1].quiet_seconds" in r.output


def test_flags_override_file(tmp_path: Path) -> None:
    f = tmp_path / "node.yaml"
    f.write_text("port: 104\nae_titles:\n  - ae_title: A\n    quiet_seconds: 2\n  - ae_title: B\n")
    cfg = build_config(f, 4242, "FLAGGED", tmp_path / "d", [])
    assert cfg.port == 4242 and cfg.data_dir == tmp_path / "d"
    assert [(a.ae_title, a.quiet_seconds) for a in cfg.ae_titles] == [("FLAGGED", 2), ("B", 5)]


def test_parse_destination() -> None:
    assert parse_destination("PACS@10.0.0.5:104") == {
        "name": "PACS",
        "kind": "dimse",
        "ae_title": "PACS",
        "host": "10.0.0.5",
        "port": 104,
    }
    assert parse_destination("ORTHANC@[::1]:4242")["host"] == "::1"
    for bad in (
        "PACS",
        "PACS@host",
        "@host:104",
        "PACS@host:0",
        "PACS@host:99999",
        "A_TITLE_LONGER_THAN_16@h:1",
    ):
        with pytest.raises(ValueError, match="expected AE@host:port"):
            parse_destination(bad)


MIXED = """\
data_dir: {data_dir}
port: 70000
destinations:
  - {{name: pacs, kind: dimse, ae_title: PACS, host: 127.0.0.1, port: 104}}
  - {{name: vna, kind: dimse, ae_title: VNA, host: 127.0.0.1, port: 0}}
routes:
  - name: chest
    models: [demo-cxr-densenet12]
    destinations: [pacs, vna, archive]
  - name: chest
    models: [demo-cxr-densenet121]
  - name: broken
    action: fly
"""


def test_config_check_reports_field_and_reference_errors_in_one_pass(tmp_path: Path) -> None:
    f = tmp_path / "node.yaml"
    f.write_text(MIXED.format(data_dir=tmp_path))
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    assert r.exit_code == 1
    lines = [line.strip() for line in r.output.splitlines()[1:] if line.strip()]
    assert lines[0].startswith("port:")  # field errors first, each with its path
    assert any(line.startswith("destinations[1].dimse.port:") for line in lines), lines
    assert any(line.startswith("routes[2].action:") for line in lines), lines
    # Cross-references in the same pass: an invalid destination still counts as named,
    # a mistyped model is named with its path.
    assert "routes[0].models[0]: unknown model 'demo-cxr-densenet12'" in lines
    assert "routes[0].destinations[2]: unknown destination 'archive'" in lines
    assert "routes[1].name: duplicate route name 'chest' (also routes[0])" in lines
    assert not any("destinations[1]: unknown destination 'vna'" in line for line in lines)
    assert f"{len(lines)} configuration errors" in r.output


def test_config_check_knows_packages_under_models_dir(tmp_path: Path) -> None:
    from ai.bundled.cache import demo_manifest
    from ai.manifest import dump_manifest

    package = tmp_path / "models" / "cxr-real"
    package.mkdir(parents=True)
    real = demo_manifest("1.2.3").model_copy(update={"name": "cxr-real", "demo": False})
    dump_manifest(real, package / "model.yaml")
    f = tmp_path / "node.yaml"
    f.write_text(f"data_dir: {tmp_path}\nroutes:\n  - name: chest\n    models: [cxr-real]\n")
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    assert r.exit_code == 0, r.output
    assert "models: cxr-real, demo-cxr-densenet121" in r.output
    f.write_text(
        f"data_dir: {tmp_path}\nmodels: {{bundled: false}}\nroutes:\n"
        "  - name: chest\n    models: [demo-cxr-densenet121]\n"
    )
    r = CliRunner().invoke(app, ["config", "check", str(f)])
    assert r.exit_code == 1
    assert "routes[0].models[0]: unknown model 'demo-cxr-densenet121'" in r.output


def test_serve_refuses_a_route_to_an_unknown_model(tmp_path: Path) -> None:
    f = tmp_path / "node.yaml"
    f.write_text(
        f"data_dir: {tmp_path}\nroutes:\n  - name: chest\n    models: [demo-cxr-densenet12]\n"
    )
    r = CliRunner().invoke(app, ["serve", "--config", str(f)])
    assert r.exit_code == 2
    assert "routes[0].models[0]: unknown model 'demo-cxr-densenet12'" in r.output
    assert not (tmp_path / "index.sqlite").exists()  # refused before anything started


def test_demo_warnings_only_for_demo_results_sent_somewhere() -> None:
    from dicom_node.reload import demo_warnings
    from dicom_node.settings.routes import RouteRule

    def rule(name: str, **kw) -> RouteRule:
        return RouteRule(name=name, **kw)

    rules = [
        rule("demo-to-pacs", models=["demo", "real"], destinations=["pacs", "vna"]),
        rule("demo-kept-here", models=["demo"]),
        rule("real-to-pacs", models=["real"], destinations=["pacs"]),
        rule("disabled", enabled=False, models=["demo"], destinations=["pacs"]),
    ]
    assert demo_warnings(rules, {"demo"}) == [
        "WARNING: route 'demo-to-pacs' sends results of the NON-CLINICAL DEMO model demo "
        "(untrained weights) to pacs, vna"
    ]


def test_readme_production_example_is_valid_and_runs_no_demo_model() -> None:
    import re

    import yaml

    from ai.bundled.cache import DEMO_NAME
    from dicom_node.settings.root import validate_config

    readme = (ROOT / "README.md").read_text()
    after = readme.split("A minimal production file", 1)[1]
    block = re.search(r"```yaml\n(.*?)```", after, re.S).group(1)
    assert DEMO_NAME not in block
    cfg = validate_config(yaml.safe_load(block), "README")
    assert cfg.models.bundled is False
    assert all(DEMO_NAME not in r.models for r in cfg.routes)
    # Its model is a placeholder package name: config check says so until it is there.
    with pytest.raises(ConfigError, match=r"routes\[0\]\.models\[0\]: unknown model"):
        validate_config(yaml.safe_load(block), "README", models=lambda _cfg: [])


def test_results_settings_reach_the_writer() -> None:
    from dicom_node.settings.root import validate_config

    cfg = validate_config(
        {"results": {"max_heatmaps_per_image": 1, "heatmap_floor": 0.6, "max_heatmap_images": 4}}
    )
    options = cfg.results.write_options()
    assert (
        options.heatmaps,
        options.max_heatmaps_per_image,
        options.heatmap_floor,
        options.max_heatmap_images,
    ) == ("positive", 1, 0.6, 4)
    with pytest.raises(ConfigError) as exc:
        validate_config({"results": {"heatmap_floor": 1.0, "max_heatmaps_per_image": 0}})
    assert {e.split(":")[0] for e in exc.value.errors} == {
        "results.heatmap_floor",
        "results.max_heatmaps_per_image",
    }
