"""The deliver stage: a job's outputs to each of its destinations, every attempt on record.

Each destination gets only what it has not accepted yet (nothing is sent twice), and the
attempt is on record before the first file goes (:mod:`dicom_node.jobs.attempts`). A
destination that is not configured, or that refuses for good, is a permanent failure;
one that is unreachable or busy is transient; one whose sender raised an exception it did
not expect is recorded as a permanent failure by ``deliver()`` and the job goes on to its
other destinations.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from dicom_node.delivery import deliver
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.errors import PermanentJobError, TransientJobError
from dicom_node.jobs.models import Job
from dicom_node.jobs.write import Output
from dicom_node.settings.destinations import Destination

log = logging.getLogger(__name__)


def deliver_outputs(
    attempts: AttemptLog,
    job: Job,
    outputs: Sequence[Output],
    destinations: Sequence[Destination],
    *,
    check: Callable[[], None] = lambda: None,
    on_delivered: Callable[[str], None] = lambda _name: None,
) -> None:
    """Send ``outputs`` to each of the job's destinations; ``check()`` runs before each
    (it raises to stop, e.g. when the job was cancelled); ``on_delivered(name)`` after
    each destination that accepted everything it was sent."""
    by_name = {d.name: d for d in destinations}
    attempts.interrupt_unfinished(job.id, job.study_uid, {d.name: d.kind for d in destinations})
    accepted = attempts.accepted(job.id)
    transient: list[str] = []
    permanent: list[str] = []
    label = f"job {job.id} study {job.study_uid}"
    for name in job.destinations:
        files = [o.path for o in outputs if o.sop_instance_uid not in accepted.get(name, set())]
        if not files:
            continue
        check()
        dest = by_name.get(name)
        if dest is None:
            permanent.append(f"destination {name!r} is not configured")
            continue
        attempt = attempts.start(job.id, name, planned=len(files), label=label, protocol=dest.kind)
        report = deliver(
            dest,
            files,
            priority="stat" if job.priority == 0 else "routine",
            label=label,
            on_outcomes=attempt.record,
        )
        attempt.finish(report)
        if report.status == "transient":
            transient.append(f"{name}: {report.summary()}")
        elif report.status == "permanent":
            permanent.append(f"{name}: {report.summary()}")
        else:
            log.info("%s: %d object(s) delivered to %s", label, len(files), name)
            on_delivered(name)
    if permanent:
        raise PermanentJobError("; ".join(permanent + transient))
    if transient:
        raise TransientJobError("delivery failed: " + "; ".join(transient))
