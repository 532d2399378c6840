"""A destination whose host name the resolver never answers for: each delivery attempt
ends within the destination's timeout, is on record with a one-line reason, and the job
is retried (a transient failure, as any network error).

A resolver that hangs cannot be caused here for real: ``socket.getaddrinfo`` (what
pynetdicom and urllib3 call to resolve a name) is substituted by one that blocks for the
names ending in ``.hang.invalid`` (until the test ends, at most ``HANG_S``) and resolves
any other name as usual. Everything else is real: the destinations, the deliverers, the
attempt log on a SQLite index and the deliver stage of a job.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pydicom import dcmread
from sqlalchemy import select

from dicom_node.db import Database
from dicom_node.jobs.attempts import AttemptLog
from dicom_node.jobs.deliver import deliver_outputs
from dicom_node.jobs.errors import TransientJobError
from dicom_node.jobs.models import DeliveryAttempt, DeliveryResponse, Job
from dicom_node.jobs.queue import JobQueue, NewJob
from dicom_node.jobs.write import Output
from dicom_node.settings.destinations import (
    DimseDestination,
    OrthancDestination,
    StowRsDestination,
)
from tests.support.groups import add_group


def test_a_hanging_resolver_fails_the_attempt_and_the_job_is_retried(
    hanging_resolver: None, index: Database, tmp_path: Path, files: dict[str, list[Path]]
) -> None:
    destinations = [
        DimseDestination(
            name="pacs", ae_title="PACS", host="pacs.hang.invalid", port=104, timeout=1
        ),
        StowRsDestination(name="web", url="http://web.hang.invalid:8080/dicom-web", timeout=1),
        OrthancDestination(name="orthanc", url="http://orthanc.hang.invalid:8042", timeout=1),
    ]
    ds = dcmread(files["cr"][0], stop_before_pixels=True)
    outputs = [Output("forward", ds.SOPClassUID, ds.SOPInstanceUID, str(files["cr"][0]))]
    gid, uids = add_group(index, tmp_path, state="routed")
    job_id = JobQueue(index).enqueue(
        NewJob(
            group_id=gid,
            rule_name="fwd",
            action="forward",
            study_uid="1.2.3",
            destinations=[d.name for d in destinations],
            instance_uids=uids,
        )
    )
    with index.session() as s:
        job = s.get(Job, job_id)
        assert job is not None
        s.expunge(job)

    with pytest.raises(TransientJobError):  # retried, not dead
        deliver_outputs(AttemptLog(index), job, outputs, destinations)

    with index.session() as s:
        attempts = s.execute(
            select(DeliveryAttempt.destination, DeliveryAttempt.outcome, DeliveryAttempt.error)
            .where(DeliveryAttempt.job_id == job_id)
            .order_by(DeliveryAttempt.id)
        ).all()
        responses = s.execute(select(DeliveryResponse.outcome)).scalars().all()
    assert [tuple(a) for a in attempts] == [
        (
            "pacs",
            "transient",
            "cannot connect to pacs.hang.invalid:104: host name 'pacs.hang.invalid' not "
            "resolved within 1 s",
        ),
        (
            "web",
            "transient",
            "cannot reach STOW-RS at http://web.hang.invalid:8080/dicom-web: host name "
            "'web.hang.invalid' not resolved within 1 s",
        ),
        (
            "orthanc",
            "transient",
            "cannot reach Orthanc at http://orthanc.hang.invalid:8042: host name "
            "'orthanc.hang.invalid' not resolved within 1 s",
        ),
    ]
    assert responses == ["transient"] * 3
