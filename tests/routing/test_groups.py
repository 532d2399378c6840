"""Completed groups become jobs by the rules; the rest is recorded with the reason."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from ai.registry import ModelRegistry
from dicom_node.db import Database
from dicom_node.index.tables import Group, Instance
from dicom_node.jobs.models import Job
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.service import default_rules
from dicom_node.model_registry import model_manifests
from dicom_node.routing.groups import GroupRouter
from dicom_node.settings.root import NodeConfig
from tests.support.groups import add_group


def _view(db: Database, gid: int, views: list[str]) -> None:
    with db.session() as s:
        ids = s.scalars(
            select(Instance.id).where(Instance.group_id == gid).order_by(Instance.id)
        ).all()
        for iid, view in zip(ids, views, strict=True):
            s.execute(update(Instance).where(Instance.id == iid).values(view_position=view))


def test_default_rules_follow_the_manifest(index: Database, tmp_path: Path) -> None:
    cfg = NodeConfig(
        data_dir=tmp_path,
        destinations=[
            {"name": "PACS", "kind": "dimse", "ae_title": "PACS", "host": "127.0.0.1", "port": 104}
        ],
    )
    registry = ModelRegistry.load(cache_dir=tmp_path / "models")
    loaded = {name: m.package.manifest for name, m in registry.models.items()}
    registry.close()
    rules = default_rules(cfg, loaded)
    # The manifests alone (no ONNX session, as `studies reprocess` reads them) give the
    # same rules.
    manifests, errors = model_manifests(cfg)
    assert errors == [] and default_rules(cfg, manifests) == rules
    assert [r.name for r in rules] == ["default:demo-cxr-densenet121"]
    d = GroupRouter(index, JobQueue(index), lambda: rules)
    pa_lat, uids = add_group(index, tmp_path, state="complete", study="1.1")
    _view(index, pa_lat, ["PA", "LL"])
    lat_only, _ = add_group(index, tmp_path, state="complete", study="1.2")
    _view(index, lat_only, ["LL", "LL"])
    ct, _ = add_group(index, tmp_path, state="complete", study="1.3", modality="CT")
    assert d.sweep() == 3
    with index.session() as s:
        states = {g.id: (g.state, g.route_note) for g in s.scalars(select(Group))}
        jobs = s.scalars(select(Job)).all()
    assert states[pa_lat][0] == "routed"
    assert [(j.group_id, j.instance_uids, j.destinations) for j in jobs] == [
        (pa_lat, [uids[0]], ["PACS"])
    ]  # only the PA image goes to the model
    assert states[lat_only][0] == "unrouted" and "view_position" in states[lat_only][1]
    assert states[ct][0] == "unrouted" and "modality" in states[ct][1]
    assert d.sweep() == 0  # nothing left complete: each group is routed once
