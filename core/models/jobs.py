"""Runs of the scheduled jobs (core.scheduler): one row per job and fire time, claimed by the
instance that runs it."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.enums import JobOutcome
from core.models.types import Stamped, UTCDateTime, str_enum


class JobRun(SQLModel, table=True):
    """One fire time of one job. The row is the claim: the instance whose insert wins (the
    unique job + scheduled_for) runs it; every other instance leaves that fire time alone."""

    __tablename__ = "job_runs"
    __table_args__ = (
        sa.UniqueConstraint("job", "scheduled_for", name="uq_job_runs_job_scheduled_for"),
        sa.Index("ix_job_runs_started_at", "started_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    job: str = Field(max_length=60)
    scheduled_for: datetime = Field(sa_type=UTCDateTime)
    instance: str = Field(max_length=120)
    started_at: datetime = Stamped()
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    outcome: JobOutcome = Field(default=JobOutcome.RUNNING, sa_type=str_enum(JobOutcome))
    error: str | None = Field(default=None, sa_type=sa.Text)
