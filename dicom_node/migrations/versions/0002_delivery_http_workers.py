"""From the previous release (8da2ed1) to this one: the delivery record, the HTTP face's
index columns and results table, Celery publishing and workers.

- ``delivery_responses``: one row per instance per attempt (was the ``statuses`` JSON of
  ``delivery_attempts``; existing statuses are copied into rows, so a job retried after
  the upgrade still skips what a destination had accepted);
- ``delivery_attempts.planned`` (files the attempt set out to send; old rows: ``sent``),
  ``delivery_attempts.statuses`` dropped;
- ``jobs.published_at`` (executor: celery);
- ``workers`` (heartbeats of ``dicom-node worker`` processes);
- ``instances``: QIDO-RS attributes (study_time, study_description, study_id,
  series_number, patient_birth_date, patient_sex, referring_physician; NULL for instances
  stored before the upgrade) and indexes on patient_id, accession_number, study_date,
  modality;
- ``result_instances`` (the node's results as QIDO/WADO see them; the node fills it from
  ``job_outputs`` on its own).

Revision ID: 0002_delivery_http_workers
Revises: 0001_baseline_8da2ed1
"""

import json

import sqlalchemy as sa
from alembic import op

revision = "0002_delivery_http_workers"
down_revision = "0001_baseline_8da2ed1"
branch_labels = None
depends_on = None


def _copy_statuses() -> None:
    """Each old attempt's per-instance statuses become delivery_responses rows."""
    bind = op.get_bind()
    attempts = sa.table(
        "delivery_attempts",
        sa.column("id"),
        sa.column("statuses"),
        sa.column("started_at"),
        sa.column("finished_at"),
    )
    responses = sa.table(
        "delivery_responses",
        sa.column("attempt_id"),
        sa.column("sop_instance_uid"),
        sa.column("outcome"),
        sa.column("code"),
        sa.column("warning"),
        sa.column("error"),
        sa.column("elapsed_s"),
        sa.column("at"),
    )
    rows = []
    for aid, statuses, started, finished in bind.execute(
        sa.select(attempts.c.id, attempts.c.statuses, attempts.c.started_at, attempts.c.finished_at)
    ):
        if isinstance(statuses, str):
            statuses = json.loads(statuses)
        for uid, st in (statuses or {}).items():
            rows.append(
                {
                    "attempt_id": aid,
                    "sop_instance_uid": uid,
                    "outcome": st.get("outcome") or "transient",
                    "code": st.get("code"),
                    "warning": False,
                    "error": st.get("error"),
                    "elapsed_s": 0.0,
                    "at": finished or started,
                }
            )
    if rows:
        op.bulk_insert(responses, rows)


def upgrade() -> None:
    op.create_table(
        "delivery_responses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("attempt_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", sa.String(length=64), nullable=False),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("code", sa.Integer(), nullable=True),
        sa.Column("warning", sa.Boolean(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("elapsed_s", sa.Float(), nullable=False),
        sa.Column("at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(["attempt_id"], ["delivery_attempts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_delivery_responses_attempt_id"), "delivery_responses", ["attempt_id"], unique=False
    )
    _copy_statuses()
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("planned", sa.Integer(), nullable=False, server_default="0"))
    op.execute("UPDATE delivery_attempts SET planned = sent")
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.drop_column("statuses")
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("published_at", sa.DateTime(), nullable=True))
    op.create_table(
        "workers",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("models", sa.JSON(), nullable=False),
        sa.Column("provider", sa.String(length=255), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("jobs_in_hand", sa.JSON(), nullable=False),
        sa.Column("metrics_url", sa.String(length=255), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("last_seen", sa.DateTime(), nullable=False),
        sa.Column("stopped_at", sa.DateTime(), nullable=True),
        sa.PrimaryKeyConstraint("name"),
    )
    op.create_index(op.f("ix_workers_last_seen"), "workers", ["last_seen"], unique=False)
    _http_index()


_QIDO_COLUMNS = (
    ("study_time", sa.String(16)),
    ("study_description", sa.String(64)),
    ("study_id", sa.String(16)),
    ("series_number", sa.Integer()),
    ("patient_birth_date", sa.String(8)),
    ("patient_sex", sa.String(16)),
    ("referring_physician", sa.String(324)),
)
_INDEXED = ("patient_id", "accession_number", "study_date", "modality")
#: result_instances' columns: the instances columns the HTTP face reads.
_RESULT_COLUMNS = (
    ("sop_instance_uid", sa.String(64)),
    ("sop_class_uid", sa.String(64)),
    ("study_uid", sa.String(64)),
    ("series_uid", sa.String(64)),
    ("patient_id", sa.String(64)),
    ("patient_name", sa.String(324)),
    ("accession_number", sa.String(64)),
    ("study_date", sa.String(8)),
    ("modality", sa.String(16)),
    ("body_part", sa.String(64)),
    ("series_description", sa.String(64)),
    ("view_position", sa.String(16)),
    ("instance_number", sa.Integer()),
    ("transfer_syntax", sa.String(64)),
    ("rows", sa.Integer()),
    ("columns", sa.Integer()),
    ("number_of_frames", sa.Integer()),
    *_QIDO_COLUMNS,
    ("path", sa.String(1024)),
)


def _http_index() -> None:
    with op.batch_alter_table("instances") as batch:
        for name, kind in _QIDO_COLUMNS:
            batch.add_column(sa.Column(name, kind, nullable=True))
    for name in _INDEXED:
        op.create_index(op.f(f"ix_instances_{name}"), "instances", [name], unique=False)
    op.create_table(
        "result_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("output_id", sa.Integer(), nullable=False),
        *[sa.Column(name, kind, nullable=True) for name, kind in _RESULT_COLUMNS],
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("output_id"),
    )
    for name in ("modality", "series_uid", "sop_instance_uid", "study_uid"):
        op.create_index(
            op.f(f"ix_result_instances_{name}"), "result_instances", [name], unique=False
        )


def downgrade() -> None:
    op.drop_table("result_instances")
    for name in _INDEXED:
        op.drop_index(op.f(f"ix_instances_{name}"), "instances")
    with op.batch_alter_table("instances") as batch:
        for name, _ in _QIDO_COLUMNS:
            batch.drop_column(name)
    op.drop_table("workers")
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("published_at")
    with op.batch_alter_table("delivery_attempts") as batch:
        batch.add_column(sa.Column("statuses", sa.JSON(), nullable=False, server_default="{}"))
        batch.drop_column("planned")
    op.drop_table("delivery_responses")
