"""``destinations:`` section: where results are sent.

Each destination is one of three kinds, told apart by ``kind``:

- ``dimse``: a DICOM Storage SCP reached with C-STORE (AE title, host, port).
- ``stowrs``: a DICOMweb STOW-RS endpoint (the DICOMweb root URL).
- ``orthanc``: an Orthanc server's REST API (``POST /instances``).

``serve --destination AE@host:port`` injects
``{"name": AE, "kind": "dimse", "ae_title": AE, "host": host, "port": port}``.
"""

from __future__ import annotations

from typing import Annotated, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, SecretStr, TypeAdapter, field_validator

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "Destination",
    "DestinationAdapter",
    "DimseDestination",
    "OrthancDestination",
    "StowRsDestination",
    "validate_ae_title",
]


def validate_ae_title(value: str) -> str:
    """An AE title: 1-16 characters of the default repertoire, no backslash or control chars.

    Leading/trailing spaces are not significant in DICOM and are stripped.
    """
    value = value.strip()
    if not value:
        raise ValueError("AE title must not be empty")
    if len(value) > 16:
        raise ValueError(f"AE title {value!r} is longer than 16 characters")
    if "\\" in value or any(ord(c) < 32 or ord(c) > 126 for c in value):
        raise ValueError(f"AE title {value!r} has a backslash, control or non-ASCII character")
    return value


class BasicAuth(BaseModel):
    """HTTP Basic authentication."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    username: str = Field(min_length=1)
    password: SecretStr


class BearerAuth(BaseModel):
    """HTTP Bearer token (``Authorization: Bearer <token>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token: SecretStr


Auth = BasicAuth | BearerAuth


def _check_http_url(value: str) -> str:
    parsed = urlparse(value)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value.rstrip("/")


class _Base(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="Unique name routes refer to.")
    timeout: float = Field(
        30.0, gt=0, le=3600, description="Seconds allowed for connecting and for each reply."
    )


class DimseDestination(_Base):
    """A Storage SCP reached with C-STORE."""

    kind: Literal["dimse"] = "dimse"
    ae_title: str = Field(description="The peer's (called) AE title.")
    host: str = Field(min_length=1)
    port: int = Field(ge=1, le=65535)
    calling_ae_title: str = Field("DICOM_NODE", description="Our AE title in the association.")

    @field_validator("ae_title", "calling_ae_title")
    @classmethod
    def _ae(cls, value: str) -> str:
        return validate_ae_title(value)


class _HttpDestination(_Base):
    url: str
    auth: Auth | None = None

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        return _check_http_url(value)


class StowRsDestination(_HttpDestination):
    """A DICOMweb server; ``url`` is the DICOMweb root (``.../dicom-web``)."""

    kind: Literal["stowrs"] = "stowrs"
    instances_per_request: int = Field(
        1,
        ge=1,
        le=500,
        description="Instances in one STOW-RS request. Its answer names them all at once, so "
        "a node killed while a request is under way sends all of that request's instances "
        "again: with 1, at most the one in flight. More means fewer requests (forwarding "
        "large studies).",
    )


class OrthancDestination(_HttpDestination):
    """An Orthanc server's REST API; ``url`` is its root (``http://host:8042``)."""

    kind: Literal["orthanc"] = "orthanc"


Destination = Annotated[
    DimseDestination | StowRsDestination | OrthancDestination, Field(discriminator="kind")
]
"""One destination; pydantic picks the model by ``kind``."""

DestinationAdapter: TypeAdapter[Destination] = TypeAdapter(Destination)
"""Validates one destination from plain data: ``DestinationAdapter.validate_python({...})``."""
