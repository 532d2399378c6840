"""``routes:`` section: ordered routing rules."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class RouteRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
