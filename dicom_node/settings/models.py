"""``models:`` section: which model packages to load and how to run them."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ModelsSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
