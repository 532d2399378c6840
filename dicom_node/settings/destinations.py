"""``destinations:`` section: where results are sent."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Destination(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
