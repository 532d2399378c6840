"""QIDO-RS: SeriesDate, SeriesTime, PerformedProcedureStepStartDate and
PerformedProcedureStepStartTime in ``instances`` and ``result_instances``.

Series results return them when present; SeriesDate is a matching key (indexed in
``instances``, like study_date). Rows indexed before this revision keep NULL (their files
are not read again): their series are returned without these attributes and match no
SeriesDate range.

Revision ID: 0005_series_dates
Revises: 0004_delivery_destination_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_series_dates"
down_revision = "0004_delivery_destination_index"
branch_labels = None
depends_on = None

_TABLES = ("instances", "result_instances")
_COLUMNS = (
    ("series_date", sa.String(8)),
    ("series_time", sa.String(16)),
    ("pps_start_date", sa.String(8)),
    ("pps_start_time", sa.String(16)),
)


def upgrade() -> None:
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name, kind in _COLUMNS:
                batch.add_column(sa.Column(name, kind, nullable=True))
    op.create_index(op.f("ix_instances_series_date"), "instances", ["series_date"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_instances_series_date"), "instances")
    for table in _TABLES:
        with op.batch_alter_table(table) as batch:
            for name, _ in _COLUMNS:
                batch.drop_column(name)
