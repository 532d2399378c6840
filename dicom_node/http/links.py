"""URLs the node writes into DICOMweb responses (RetrieveURL, BulkDataURI)."""

from __future__ import annotations

from urllib.parse import quote


def uid_path(*uids: str) -> str:
    """``/studies/{s}[/series/{se}[/instances/{i}]]`` with each UID percent-encoded, so
    that a UID stored outside the UID character set still gives a valid URL."""
    names = ("studies", "series", "instances")
    return "".join(f"/{name}/{quote(uid, safe='')}" for name, uid in zip(names, uids, strict=False))
