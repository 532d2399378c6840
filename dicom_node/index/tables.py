"""The index tables: one row per stored instance, one per study/series group."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from dicom_node.db import Base


class GroupState(enum.StrEnum):
    """Group states. The receive path moves ``open`` -> ``complete``; routing takes
    ``complete`` groups to ``routed`` (jobs made), ``unrouted`` (no rule matched) or
    ``discarded`` (a rule discarded them)."""

    OPEN = "open"
    COMPLETE = "complete"
    ROUTED = "routed"
    UNROUTED = "unrouted"
    DISCARDED = "discarded"


OPEN = GroupState.OPEN.value
COMPLETE = GroupState.COMPLETE.value
ROUTED = GroupState.ROUTED.value
UNROUTED = GroupState.UNROUTED.value
DISCARDED = GroupState.DISCARDED.value


class Group(Base):
    """Instances of one study (or series) received on one called AE, until quiet.

    Times are naive UTC.
    """

    __tablename__ = "groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state: Mapped[str] = mapped_column(String(16), default=OPEN, index=True)
    called_ae: Mapped[str] = mapped_column(String(16))
    calling_ae: Mapped[str] = mapped_column(String(16))
    group_by: Mapped[str] = mapped_column(String(8))  # study | series
    group_key: Mapped[str] = mapped_column(String(64))  # the study or series UID
    study_uid: Mapped[str] = mapped_column(String(64), index=True)
    series_uid: Mapped[str | None] = mapped_column(String(64))  # set when grouped by series
    patient_id: Mapped[str | None] = mapped_column(String(64))
    patient_name: Mapped[str | None] = mapped_column(String(324))
    accession_number: Mapped[str | None] = mapped_column(String(64))
    study_date: Mapped[str | None] = mapped_column(String(8))
    modalities: Mapped[str] = mapped_column(String(128), default="")  # e.g. "CT\\SR"
    instance_count: Mapped[int] = mapped_column(Integer, default=0)
    total_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    first_received: Mapped[datetime] = mapped_column(DateTime)
    last_received: Mapped[datetime] = mapped_column(DateTime)
    deadline: Mapped[datetime] = mapped_column(DateTime, index=True)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)
    route_note: Mapped[str | None] = mapped_column(Text)  # why routed/unrouted/discarded

    __table_args__ = (
        # At most one open group per (called AE, key): enforced by the database too.
        Index(
            "uq_groups_open",
            "called_ae",
            "group_key",
            unique=True,
            sqlite_where=text("state = 'open'"),
            postgresql_where=text("state = 'open'"),
        ),
    )


class Instance(Base):
    """One stored instance: where its file is and the attributes routing needs."""

    __tablename__ = "instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64), unique=True)
    sop_class_uid: Mapped[str] = mapped_column(String(64))
    study_uid: Mapped[str] = mapped_column(String(64))  # indexed with modality, below
    series_uid: Mapped[str] = mapped_column(String(64), index=True)
    patient_id: Mapped[str | None] = mapped_column(String(64), index=True)
    patient_name: Mapped[str | None] = mapped_column(String(324))
    accession_number: Mapped[str | None] = mapped_column(String(64), index=True)
    study_date: Mapped[str | None] = mapped_column(String(8), index=True)
    modality: Mapped[str | None] = mapped_column(String(16), index=True)
    body_part: Mapped[str | None] = mapped_column(String(64))
    series_description: Mapped[str | None] = mapped_column(String(64))
    view_position: Mapped[str | None] = mapped_column(String(16))
    image_type: Mapped[str | None] = mapped_column(String(128))  # values joined by '\\'
    instance_number: Mapped[int | None] = mapped_column(Integer)
    transfer_syntax: Mapped[str] = mapped_column(String(64))
    rows: Mapped[int | None] = mapped_column(Integer)
    columns: Mapped[int | None] = mapped_column(Integer)
    number_of_frames: Mapped[int | None] = mapped_column(Integer)
    # QIDO-RS's default return attributes (matching keys above are indexed below)
    study_time: Mapped[str | None] = mapped_column(String(16))
    study_description: Mapped[str | None] = mapped_column(String(64))
    study_id: Mapped[str | None] = mapped_column(String(16))
    series_number: Mapped[int | None] = mapped_column(Integer)
    patient_birth_date: Mapped[str | None] = mapped_column(String(8))
    patient_sex: Mapped[str | None] = mapped_column(String(16))
    referring_physician: Mapped[str | None] = mapped_column(String(324))
    # Series attributes QIDO-RS returns when present (migration 0005; NULL in rows
    # indexed before it). SeriesDate is a matching key: indexed.
    series_date: Mapped[str | None] = mapped_column(String(8), index=True)
    series_time: Mapped[str | None] = mapped_column(String(16))
    # PerformedProcedureStepStartDate and PerformedProcedureStepStartTime
    pps_start_date: Mapped[str | None] = mapped_column(String(8))
    pps_start_time: Mapped[str | None] = mapped_column(String(16))
    calling_ae: Mapped[str] = mapped_column(String(16))
    called_ae: Mapped[str] = mapped_column(String(16))
    peer_address: Mapped[str | None] = mapped_column(String(64))
    received_at: Mapped[datetime] = mapped_column(DateTime)
    path: Mapped[str] = mapped_column(String(1024))  # absolute path of the Part 10 file
    size: Mapped[int] = mapped_column(BigInteger)
    group_id: Mapped[int] = mapped_column(ForeignKey("groups.id"), index=True)

    __table_args__ = (
        # A study's instances, and QIDO-RS's ModalitiesInStudy test of one study by seek.
        Index("ix_instances_study_uid_modality", "study_uid", "modality"),
    )
