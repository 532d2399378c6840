"""URLs the node writes into DICOMweb responses (RetrieveURL, BulkDataURI)."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request

from dicom_node.http.app import node_of

PREFIX = "/dicomweb"


def uid_path(*uids: str) -> str:
    """``/studies/{s}[/series/{se}[/instances/{i}]]`` with each UID percent-encoded, so
    that a UID stored outside the UID character set still gives a valid URL."""
    names = ("studies", "series", "instances")
    return "".join(f"/{name}/{quote(uid, safe='')}" for name, uid in zip(names, uids, strict=False))


def base_url(request: Request) -> str:
    """The DICOMweb root URL for links in responses: ``http.public_url`` if configured,
    else the Host the client used, with the port it connected to when its Host header
    names none (dicomweb-client sends the bare host)."""
    public = node_of(request).config.http.public_url
    if public:
        return public.rstrip("/") + PREFIX
    host = request.headers.get("host", "")
    server = request.scope.get("server")
    if host and ":" not in host.rsplit("]", 1)[-1] and server and server[1]:
        host = f"{host}:{server[1]}"
    root = f"{request.url.scheme}://{host}" if host else str(request.base_url)
    return root.rstrip("/") + PREFIX
