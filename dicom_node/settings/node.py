"""Node-level sections of the configuration: network, AE titles, storage, logging."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field


def _check_ae_title(value: str) -> str:
    """An AE title: 1-16 characters of the default repertoire, no backslash, not blank."""
    title = value.strip()
    if not title:
        raise ValueError("must not be blank")
    if len(title) > 16:
        raise ValueError("must be at most 16 characters")
    if "\\" in title or any(ord(c) < 0x20 or ord(c) > 0x7E for c in title):
        raise ValueError("must be printable ASCII without backslash")
    return title


AETitle = Annotated[str, AfterValidator(_check_ae_title)]


class AllowedCaller(BaseModel):
    """One entry of a calling-AE allow-list; ``host`` (IP address) optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: AETitle
    host: str | None = None


class AETitleSettings(BaseModel):
    """One called AE title the node answers to, with its own assembly settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    ae_title: AETitle
    group_by: Literal["study", "series"] = "study"
    quiet_seconds: float = Field(5.0, gt=0, description="complete a group after this quiet")
    allowed_calling: list[AllowedCaller] = Field(
        default_factory=list, description="empty: any calling AE is accepted"
    )

    def allows(self, calling_ae: str, host: str) -> bool:
        """Whether ``calling_ae`` connecting from ``host`` may associate."""
        if not self.allowed_calling:
            return True
        calling = calling_ae.strip()
        return any(
            a.ae_title == calling and (a.host is None or a.host == host)
            for a in self.allowed_calling
        )


class LoggingSettings(BaseModel):
    """Log level of the node and of pynetdicom (which is chatty at INFO)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    pynetdicom_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "WARNING"
