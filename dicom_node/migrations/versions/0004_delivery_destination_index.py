"""Destination status: indexes on ``delivery_attempts`` by destination.

``GET /api/destinations/status`` and ``dicom-node destinations status`` read each
destination's newest attempt and its attempts of the last 24 h through
``(destination, started_at, outcome)``, its attempts under way through a partial index of
the attempts still ``started``, and its newest error through a partial index of the
attempts with an error: seeks, where each of these read every attempt on record before.
The database builds them from the existing rows.

Revision ID: 0004_delivery_destination_index
Revises: 0003_study_modality_index
"""

import sqlalchemy as sa
from alembic import op

revision = "0004_delivery_destination_index"
down_revision = "0003_study_modality_index"
branch_labels = None
depends_on = None

_TABLE = "delivery_attempts"
_UNDER_WAY = sa.text("outcome = 'started'")
_ERRORS = sa.text("error IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        f"ix_{_TABLE}_destination_started_at", _TABLE, ["destination", "started_at", "outcome"]
    )
    op.create_index(
        f"ix_{_TABLE}_under_way",
        _TABLE,
        ["destination", "outcome"],
        sqlite_where=_UNDER_WAY,
        postgresql_where=_UNDER_WAY,
    )
    op.create_index(
        f"ix_{_TABLE}_errors",
        _TABLE,
        ["destination", "started_at"],
        sqlite_where=_ERRORS,
        postgresql_where=_ERRORS,
    )


def downgrade() -> None:
    for name in ("errors", "under_way", "destination_started_at"):
        op.drop_index(f"ix_{_TABLE}_{name}", _TABLE)
