"""Celery on a Redis broker: the app, the task name, and which queue a job's message goes to.

A message carries only a job id. The database is the source of truth: a worker claims
the job with the queue's compare-and-set, so a message delivered twice runs once, and a
lost message is published again by the sweeper in ``serve``.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from celery import Celery

TASK = "dicom_node.run_job"
QUEUE_PREFIX = "dicom-node"
FORWARD_QUEUE = f"{QUEUE_PREFIX}.forward"
#: A worker with at most this many models also consumes the queues of every combination
#: of them (a job naming several models goes to the queue of exactly that set).
MAX_COMBINED = 4


def make_app(broker_url: str) -> Celery:
    """A Celery app for the node (publisher) or a worker (consumer)."""
    app = Celery("dicom_node", broker=broker_url, set_as_current=False)
    app.conf.update(
        task_acks_late=True,  # a worker killed mid-job leaves its message unacknowledged
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # one message in hand per worker slot
        task_ignore_result=True,  # outcomes live in the jobs table
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=3,
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        task_default_queue=FORWARD_QUEUE,
    )
    return app


def queue_for(models: Sequence[str]) -> str:
    """The queue of a job needing ``models`` (none: a forward job, any worker)."""
    names = sorted(set(models))
    if not names:
        return FORWARD_QUEUE
    return f"{QUEUE_PREFIX}.model." + "+".join(names)


def queues_of(models: Sequence[str]) -> list[str]:
    """Every queue a worker with ``models`` consumes: forward jobs, each model alone and,
    for up to MAX_COMBINED models, each combination of them."""
    names = sorted(set(models))
    queues = [FORWARD_QUEUE]
    sizes = range(1, len(names) + 1) if len(names) <= MAX_COMBINED else [1, len(names)]
    for k in sizes:
        queues += [queue_for(c) for c in itertools.combinations(names, k)]
    return queues
