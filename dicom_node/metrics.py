"""Prometheus metrics of the node (served at ``/metrics`` by :mod:`dicom_node.http`)."""

from __future__ import annotations

import gc

from prometheus_client import Counter, Gauge, Histogram

INSTANCES_RECEIVED = Counter(
    "dicom_node_instances_received_total",
    "Instances stored and indexed (answered Success), by called AE.",
    ["called_ae"],
)
BYTES_RECEIVED = Counter(
    "dicom_node_received_bytes_total",
    "Bytes of DICOM files written for received instances, by called AE.",
    ["called_ae"],
)
DUPLICATES = Counter(
    "dicom_node_duplicate_instances_total",
    "Instances received again (same SOP Instance UID), by policy applied.",
    ["policy"],
)
STORE_FAILURES = Counter(
    "dicom_node_store_failures_total",
    "C-STOREs answered with a failure status, by reason.",
    ["reason"],
)
ASSOCIATIONS_REJECTED = Counter(
    "dicom_node_associations_rejected_total",
    "Associations rejected, by reason.",
    ["reason"],
)
CONTEXTS_REJECTED = Counter(
    "dicom_node_contexts_rejected_total",
    "Presentation contexts proposed to the node and rejected, by reason.",
    ["reason"],
)
STORE_SECONDS = Histogram(
    "dicom_node_store_seconds",
    "Time from C-STORE request received to the answer (parse, write, fsync, index).",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)
ASSOCIATIONS_ACTIVE = Gauge(
    "dicom_node_associations_active",
    "Associations whose thread is still running (negotiating, serving or closing).",
)
CONNECTIONS_WAITING = Gauge(
    "dicom_node_connections_waiting",
    "DIMSE connections accepted that have not sent their A-ASSOCIATE-RQ yet.",
)
CONNECTIONS_DROPPED = Counter(
    "dicom_node_connections_dropped_total",
    "DIMSE connections dropped before their A-ASSOCIATE-RQ to make room for a new one "
    "(more than max_waiting_connections waiting).",
)
SPOOL_FILES_DISCARDED = Counter(
    "dicom_node_spool_files_discarded_total",
    "Received datasets discarded unserved because their association ended first.",
)
FSYNCS_DEFERRED = Counter(
    "dicom_node_store_fsyncs_deferred_total",
    "STOW-RS parts whose fsync was not started as they ended, as ulimit -n / 16 fsyncs "
    "(each holding its file open) already waited for a thread: fsynced when placed.",
)
READY_FILES_FAILED = Counter(
    "dicom_node_ready_files_failures_total",
    "Empty spool files the background thread could not create ahead of need (disk or "
    "inodes exhausted, directory gone), by pool: stow (STOW-RS parts), dcm (C-STORE).",
    ["pool"],
)
RECONCILED = Counter(
    "dicom_node_reconciled_instances_total",
    "Stored files found without an index row by start-up reconciliation, by outcome "
    "(reindexed, unreadable, duplicate).",
    ["outcome"],
)
GROUPS_COMPLETED = Counter(
    "dicom_node_groups_completed_total",
    "Study/series groups that completed after their quiet period, by called AE.",
    ["called_ae"],
)

# -- jobs ------------------------------------------------------------------------------
GROUPS_ROUTED = Counter(
    "dicom_node_groups_routed_total",
    "Completed groups by routing outcome (routed, unrouted, discarded).",
    ["outcome"],
)
JOBS_FINISHED = Counter(
    "dicom_node_job_attempts_finished_total",
    "Job attempts by how they ended (done, failed, dead).",
    ["state"],
)
INFERENCE_SECONDS = Histogram(
    "dicom_node_inference_seconds",
    "Wall time of one job's inference for one model (all its images).",
    ["model"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
DELIVERY_ATTEMPTS = Counter(
    "dicom_node_delivery_attempts_total",
    "Delivery attempts by destination, protocol (dimse, stowrs, orthanc) and outcome "
    "(delivered, transient, permanent; interrupted: the node stopped during it, counted "
    "when the job resumes).",
    ["destination", "protocol", "outcome"],
)
DELIVERY_INSTANCES = Counter(
    "dicom_node_delivery_instances_total",
    "Per-instance delivery responses by destination, protocol and outcome (delivered, "
    "transient, permanent), counted as they arrive.",
    ["destination", "protocol", "outcome"],
)
#: Seconds, from a second to two hours: the scale of a job's stages and of a result's trip.
STAGE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 7200)
JOB_STAGE_SECONDS = Histogram(
    "dicom_node_job_stage_seconds",
    "Time a job spent in each stage, per model of the job (forward jobs: model "
    '"(forward)"): queue (due to claimed), infer (inputs read and run through the model), '
    "write (SR and SC built and stored), deliver (all destinations accepted). Observed "
    "when the stage ends successfully.",
    ["model", "stage"],
    buckets=STAGE_BUCKETS,
)
LAST_INSTANCE_TO_DELIVERED = Histogram(
    "dicom_node_last_instance_to_delivered_seconds",
    "Time from the last instance of a group received to its results accepted by a "
    "destination, per model of the job and destination (once per job and destination).",
    ["model", "destination"],
    buckets=STAGE_BUCKETS,
)

RETENTION_SERIES_BUSY = Counter(
    "dicom_node_retention_series_busy_total",
    "Series with old instances that retention found being received, by what it did: "
    "skipped (left for the next pass), waited (cleaned on a pass that could wait for its "
    "receivers, once passes in a row had skipped it for a while).",
    ["outcome"],
)

# -- inference -------------------------------------------------------------------------
BATCH_SIZE = Histogram(
    "dicom_node_inference_batch_size",
    "Inputs run through ONNX Runtime in one batch by the model's dynamic batcher.",
    ["model"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
LABEL_SCORE = Histogram(
    "dicom_node_label_score",
    "Probability each model gave each of its labels, per image frame scored: the raw "
    "material for drift monitoring.",
    ["model", "label"],
    buckets=tuple(round(0.05 * i, 2) for i in range(1, 21)),
)

# -- distributed execution (jobs.executor: celery) --------------------------------------
JOBS_PUBLISHED = Counter(
    "dicom_node_job_messages_published_total",
    "Job messages the node published to the broker (first time, or again after the "
    "message may have been lost).",
    ["kind"],
)
JOB_MESSAGES_DROPPED = Counter(
    "dicom_node_job_messages_dropped_total",
    "Messages a worker received for a job it could not claim (already taken or finished):"
    " the duplicates the compare-and-set claim absorbed.",
)
JOBS_WAITING_FOR_WORKER = Gauge(
    "dicom_node_jobs_waiting_for_worker",
    "Queued jobs whose model(s) no live worker has.",
)
JOBS_IN_HAND = Gauge(
    "dicom_node_worker_jobs_in_hand",
    "Jobs this worker process is running.",
)
GC_FROZEN = Gauge(
    "dicom_node_gc_frozen_objects",
    "Objects this process moved out of the garbage collector's reach (gc.freeze): at"
    " start-up, after the first job, after a configuration reload.",
)
GC_FROZEN.set_function(gc.get_freeze_count)

# -- HTTP ------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "dicom_node_http_requests_total",
    "HTTP requests answered, by method, route template and status code.",
    ["method", "route", "status"],
)
HTTP_CLOSED = Counter(
    "dicom_node_http_connections_closed_total",
    "HTTP connections the node closed to protect itself, by reason.",
    ["reason"],
)
HTTP_SECONDS = Histogram(
    "dicom_node_http_request_seconds",
    "Time to answer an HTTP request (whole body read and response sent), by route.",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0),
)
QUEUE_DEPTH = Gauge(
    "dicom_node_jobs",
    "Jobs in the database by state (read from the job table at each scrape).",
    ["state"],
)
