"""What the HTTP deliverers (Orthanc REST, STOW-RS) share: sessions, one bounded POST, and
status classes.

A destination's answer is read with bounds, so a broken or hostile peer cannot hold a
worker or the node's memory: redirects are not followed (a POST must not be re-sent
elsewhere, or turned into a GET that "succeeds"), at most ``MAX_ANSWER_BYTES`` of the
body are read, and the body must arrive within the destination's timeout.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import requests
import urllib3.exceptions

from dicom_node.delivery.report import Outcome
from dicom_node.settings.destinations import BasicAuth, BearerAuth

__all__ = [
    "MAX_ANSWER_BYTES",
    "Answer",
    "SlowAnswer",
    "classify_http_status",
    "http_error_text",
    "make_session",
    "post",
]

#: The most of an answer's body that is read (a STOW-RS response for 50 instances is a
#: few tens of kB; the rest of a larger body is not read, the connection is closed).
MAX_ANSWER_BYTES = 1 << 20
_CHUNK = 64 * 1024


class SlowAnswer(requests.Timeout):
    """The answer's body did not arrive within the destination's timeout."""


@dataclass(frozen=True)
class Answer:
    """A destination's answer: status, media type (no parameters) and the body read."""

    status: int
    media_type: str
    body: bytes
    truncated: bool  # the body was longer than MAX_ANSWER_BYTES; the rest was not read
    location: str  # the Location header (redirects), "" if none

    def text(self, limit: int = 300) -> str:
        """The start of the body, for error messages."""
        return self.body[:limit].decode("utf-8", "replace")


def make_session(auth: BasicAuth | BearerAuth | None) -> requests.Session:
    """A requests session carrying the destination's credentials."""
    session = requests.Session()
    if isinstance(auth, BasicAuth):
        session.auth = (auth.username, auth.password.get_secret_value())
    elif isinstance(auth, BearerAuth):
        session.headers["Authorization"] = f"Bearer {auth.token.get_secret_value()}"
    return session


def post(
    session: requests.Session,
    url: str,
    data: bytes,
    headers: dict[str, str],
    timeout: float,
    max_body: int = MAX_ANSWER_BYTES,
) -> Answer:
    """POST ``data`` once; raises a ``requests.RequestException`` when no answer came.

    ``timeout`` bounds connecting, waiting for the answer's head, and reading its whole
    body (a peer trickling an endless body raises :class:`SlowAnswer`).
    """
    with session.post(
        url, data=data, headers=headers, timeout=timeout, stream=True, allow_redirects=False
    ) as rsp:
        deadline = time.monotonic() + timeout
        chunks: list[bytes] = []
        size = 0
        truncated = False
        try:
            while True:
                if time.monotonic() > deadline:
                    raise SlowAnswer(f"the answer's body was not complete after {timeout}s")
                # read1: whatever has arrived (up to the size asked), not a full buffer
                chunk = rsp.raw.read1(min(_CHUNK, max_body + 1 - size), decode_content=True)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
                if size > max_body:
                    truncated = True
                    break
        except urllib3.exceptions.ReadTimeoutError as exc:
            raise requests.Timeout(f"reading the answer: {exc}") from exc
        except urllib3.exceptions.HTTPError as exc:  # protocol error, peer hung up, bad encoding
            raise requests.ConnectionError(f"reading the answer: {exc}") from exc
        media_type = rsp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return Answer(
            status=rsp.status_code,
            media_type=media_type,
            body=b"".join(chunks)[:max_body],
            truncated=truncated,
            location=rsp.headers.get("Location", ""),
        )


def classify_http_status(code: int) -> Outcome:
    """2xx delivered; 408, 429 and 5xx transient; any other (3xx, 4xx) permanent.

    401/403 are permanent: the credentials in *our* config are wrong, and retrying with
    the same ones cannot succeed; fix the config, then ``dicom-node jobs retry``. A
    redirect (3xx) is not followed: configure the URL it points to.
    """
    if 200 <= code < 300:
        return "delivered"
    if code in (408, 429) or code >= 500:
        return "transient"
    return "permanent"


def http_error_text(answer: Answer, url: str) -> str:
    """The error of an answer that was not a success, naming the URL (and a redirect's)."""
    if 300 <= answer.status < 400:
        where = answer.location or "(no Location)"
        return (
            f"HTTP {answer.status} from {url}: redirects to {where}; redirects are not "
            f"followed, configure the destination's final URL"
        )
    return f"HTTP {answer.status} from {url}: {answer.text()}"
