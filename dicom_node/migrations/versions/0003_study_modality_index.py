"""QIDO-RS: the study_uid indexes of ``instances`` and ``result_instances`` become
(study_uid, modality) indexes.

A study's instances are still found by the leading column; ModalitiesInStudy tests one
study with one seek in each table instead of listing every study with the modality first.
The database builds the new indexes from the existing rows (nothing to copy).

Revision ID: 0003_study_modality_index
Revises: 0002_delivery_http_workers
"""

from alembic import op

revision = "0003_study_modality_index"
down_revision = "0002_delivery_http_workers"
branch_labels = None
depends_on = None

_TABLES = ("instances", "result_instances")


def upgrade() -> None:
    for table in _TABLES:
        op.create_index(
            f"ix_{table}_study_uid_modality", table, ["study_uid", "modality"], unique=False
        )
        op.drop_index(f"ix_{table}_study_uid", table)


def downgrade() -> None:
    for table in _TABLES:
        op.create_index(f"ix_{table}_study_uid", table, ["study_uid"], unique=False)
        op.drop_index(f"ix_{table}_study_uid_modality", table)
