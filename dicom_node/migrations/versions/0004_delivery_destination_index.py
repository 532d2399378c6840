"""Destination status: an index on ``delivery_attempts (destination, started_at)``.

``GET /api/destinations/status`` and ``dicom-node destinations status`` read one
destination's attempts (the newest, those in the last 24 h) through it instead of
scanning every attempt on record. The database builds it from the existing rows.

Revision ID: 0004_delivery_destination_index
Revises: 0003_study_modality_index
"""

from alembic import op

revision = "0004_delivery_destination_index"
down_revision = "0003_study_modality_index"
branch_labels = None
depends_on = None

_INDEX = "ix_delivery_attempts_destination_started_at"


def upgrade() -> None:
    op.create_index(_INDEX, "delivery_attempts", ["destination", "started_at"], unique=False)


def downgrade() -> None:
    op.drop_index(_INDEX, "delivery_attempts")
