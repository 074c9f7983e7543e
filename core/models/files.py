"""Files waiting for the object store: a file the store could not take when it was kept (down,
or refusing our keys) is held here, in the database every instance shares, until the spool
worker (`core.storage.Files`) has uploaded it. Readers fall back to it meanwhile."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from core.models.types import Stamped


class SpooledFile(SQLModel, table=True):
    __tablename__ = "spooled_files"

    key: str = Field(primary_key=True, max_length=512)
    data: bytes = Field(sa_type=sa.LargeBinary)
    attempts: int = Field(default=0, ge=0)
    last_error: str | None = Field(default=None, max_length=1000)
    kept_at: datetime = Stamped()
