"""What the HTTP deliverers (Orthanc REST, STOW-RS) share: sessions and status classes."""

from __future__ import annotations

import requests

from dicom_node.delivery.report import Outcome
from dicom_node.settings.destinations import BasicAuth, BearerAuth

__all__ = ["classify_http_status", "make_session"]


def make_session(auth: BasicAuth | BearerAuth | None) -> requests.Session:
    """A requests session carrying the destination's credentials."""
    session = requests.Session()
    if isinstance(auth, BasicAuth):
        session.auth = (auth.username, auth.password.get_secret_value())
    elif isinstance(auth, BearerAuth):
        session.headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
    return session


def classify_http_status(code: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx transient; any other 4xx permanent.

    401/403 are permanent: the credentials in *our* config are wrong, and retrying with
    the same ones cannot succeed; fix the config, then ``dicom-node jobs retry``.
    """
    if 200 <= code < 300:
        return "delivered"
    if code in (408, 429) or code >= 500:
        return "transient"
    return "permanent"
