"""Request dependencies: the process-wide database and settings."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from core.db import Database


def get_db(request: Request) -> Database:
    return request.app.state.db


DB = Annotated[Database, Depends(get_db)]
