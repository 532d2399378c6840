"""The job side of ``serve``: models, routing of completed groups, workers, clean-up.

Attaches to a node's database, store and assembler; reads the configuration through a
callable so that a reload takes effect for the next group and the next job.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence

from ai.manifest import Manifest
from ai.registry import ModelRegistry
from dicom_node.assembly import Assembler
from dicom_node.db import Database
from dicom_node.jobs.executor import LocalExecutor
from dicom_node.jobs.pipeline import JobRunner
from dicom_node.jobs.queue import JobQueue
from dicom_node.jobs.retention import Retention
from dicom_node.jobs.sweeper import Sweeper
from dicom_node.model_registry import load_registry
from dicom_node.routing.groups import GroupRouter
from dicom_node.settings.root import NodeConfig
from dicom_node.settings.routes import MatchSpec, RouteRule
from dicom_node.store.writer import InstanceStore

log = logging.getLogger(__name__)

DEFAULT_RULE = "default"


def default_rules(config: NodeConfig, manifests: Mapping[str, Manifest]) -> list[RouteRule]:
    """With no ``routes:`` configured: run each model (name -> manifest) on the images its
    manifest applies to and send the results to every configured destination."""
    rules = []
    for name, manifest in sorted(manifests.items()):
        applies = manifest.applies_to
        rules.append(
            RouteRule(
                name=f"{DEFAULT_RULE}:{name}",
                match=MatchSpec(
                    modality=applies.modalities or None,
                    body_part=applies.body_parts or None,
                    view_position=applies.view_positions or None,
                ),
                action="infer",
                models=[name],
                destinations=[d.name for d in config.destinations],
                **{"continue": True},
            )
        )
    return rules


class JobService:
    """Builds and runs the group router, the executor and the retention schedule."""

    def __init__(
        self,
        config: Callable[[], NodeConfig],
        db: Database,
        store: InstanceStore,
        assembler: Assembler,
        registry: ModelRegistry | None = None,
    ) -> None:
        self.config = config
        cfg = config()
        self.registry = registry if registry is not None else load_registry(cfg)
        self.queue = JobQueue(db, lease_seconds=cfg.jobs.lease_seconds)
        self.runner = JobRunner(db, self.queue, store, self.registry, config)
        # embedded: worker threads here; celery: `dicom-node worker` processes run the
        # jobs and this process only publishes them (and re-publishes lost messages).
        self.executor: LocalExecutor | Sweeper
        if cfg.jobs.executor == "celery":
            self.executor = Sweeper(db, self.queue, lambda: self.config().jobs)
        else:
            self.executor = LocalExecutor(
                self.queue, self.runner, workers=cfg.jobs.workers, on_crash=self.runner.crashed
            )
        self.router = GroupRouter(
            db,
            self.queue,
            self.rules,
            on_queued=self.executor.wake,
        )
        assembler.on_complete(self.router.route_completed)
        self.retention = Retention(db, lambda: self.config().jobs.retention, store=store)

    def rules(self) -> Sequence[RouteRule]:
        """The configured routes, or the built-in default rules when there are none."""
        cfg = self.config()
        return cfg.routes or default_rules(cfg, self.manifests())

    def manifests(self) -> dict[str, Manifest]:
        """Name -> manifest of every loaded model."""
        return {name: m.package.manifest for name, m in self.registry.models.items()}

    def start(self) -> None:
        """Route groups a crash left complete, then start workers and the clean-up."""
        self.executor.start()
        swept = self.router.sweep()
        if swept:
            log.info("routed %d group(s) completed before the last shutdown", swept)
        self.retention.start()

    def stop(self, grace: float = 30.0) -> None:
        """Stop the clean-up, let workers finish what they hold, close the models."""
        self.retention.stop()
        self.executor.stop(timeout=grace)
        self.registry.close()
