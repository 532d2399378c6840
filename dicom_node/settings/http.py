"""The ``http:`` section: the HTTP port (DICOMweb, admin API, health, metrics), tokens."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dicom_node.settings.node import AETitleSettings

Role = Literal["read", "write", "admin"]
#: What each role may do: ``write`` (STOW-RS) includes ``read``, ``admin`` includes both.
ROLE_RANK: dict[str, int] = {"read": 0, "write": 1, "admin": 2}


class Token(BaseModel):
    """A bearer token and the role it grants."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, description="shown in logs instead of the token")
    token: str = Field(min_length=16, description="the secret, sent as 'Bearer <token>'")
    role: Role = "read"


class WebSource(AETitleSettings):
    """The web "AE": STOW-RS instances are received as if called on this AE title, with
    its own grouping and quiet period, and routes match it as ``called_ae``.
    ``allowed_tokens`` (token names) narrows who may store; empty: any write token."""

    ae_title: str = "DICOMWEB"
    allowed_tokens: list[str] = Field(default_factory=list)


class HttpSettings(BaseModel):
    """The node's HTTP server."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    bind_address: str | None = Field(
        None, description="None: the node's bind_address; 127.0.0.1 when no token is set"
    )
    port: int = Field(8080, ge=1, le=65535)
    tokens: list[Token] = Field(default_factory=list)
    open_health: bool = Field(True, description="/health and /ready without a token")
    open_metrics: bool = Field(True, description="/metrics without a token")
    public_url: str | None = Field(
        None, description="URL clients reach this port at (behind a proxy), for links"
    )
    max_request_mb: int = Field(2048, ge=1, description="larger STOW-RS bodies: 413")
    # Limits against hostile clients (docs/http.md, "Security notes").
    max_parts: int = Field(10_000, ge=1, description="more parts in one STOW-RS body: 413")
    max_upload_mb: int = Field(256, ge=1, description="admin API file uploads: larger, 413")
    max_config_kb: int = Field(1024, ge=1, description="posted YAML to check: larger, 413")
    max_decoded_mb: int = Field(
        1024, ge=1, description="decoded pixels a rendering or a conversion may need"
    )
    max_header_elements: int = Field(
        500_000, ge=1, description="elements before Pixel Data WADO-RS reads (422 beyond)"
    )
    max_header_kb: int = Field(
        64, ge=1, description="request line and headers; beyond it the connection is closed"
    )
    header_timeout_seconds: float = Field(
        30, gt=0, description="a connection without a running request is closed after this"
    )
    body_timeout_seconds: float = Field(
        60,
        gt=0,
        description="longest pause reading a request body (408) or writing a response "
        "(connection dropped)",
    )
    body_grace_seconds: float = Field(
        60, ge=0, description="time a request body may take before body_min_kb_per_second counts"
    )
    body_min_kb_per_second: float = Field(
        1,
        ge=0,
        description="slowest average rate of a request body after the grace period (408); 0: none",
    )
    max_connections: int = Field(
        1000, ge=1, description="open HTTP connections; more are closed as they arrive"
    )
    web_source: WebSource = Field(default_factory=WebSource)

    @model_validator(mode="after")
    def _check_tokens(self) -> HttpSettings:
        names = [t.name for t in self.tokens]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"tokens: duplicate name(s) {', '.join(dupes)}")
        unknown = [n for n in self.web_source.allowed_tokens if n not in names]
        if unknown:
            raise ValueError(f"web_source.allowed_tokens: no token named {', '.join(unknown)}")
        return self

    def effective_bind(self, node_bind: str) -> str:
        """Where the server listens: loopback only while no token protects it."""
        if not self.tokens:
            return "127.0.0.1"
        return self.bind_address or node_bind
