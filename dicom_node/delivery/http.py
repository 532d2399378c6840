"""What the HTTP deliverers (Orthanc REST, STOW-RS) share: sessions, one bounded POST, and
status classes.

A destination's answer is read with bounds, so a broken or hostile peer cannot hold a
worker or the node's memory: redirects are not followed (a POST must not be re-sent
elsewhere, or turned into a GET that "succeeds"), at most ``MAX_ANSWER_BYTES`` of the
body are read, and the whole exchange (connect, send, head, body) must end within the
destination's timeout (:mod:`dicom_node.delivery.deadline`).
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
import urllib3.exceptions

from dicom_node.delivery.deadline import Deadline, mount
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
    """The exchange (connect, send, the answer's head and body) did not end within the
    destination's timeout."""


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
    mount(session)
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

    ``timeout`` bounds the whole exchange: connecting, sending, waiting for the answer's
    head and reading its whole body (a peer trickling its head or an endless body raises
    :class:`SlowAnswer`). ``session`` must come from :func:`make_session`.
    """
    with Deadline(timeout) as deadline:
        try:
            return _exchange(session, url, data, headers, timeout, max_body, deadline)
        except requests.RequestException as exc:
            if deadline.unresolved is not None:  # one line, not urllib3's nested reprs
                raise requests.ConnectionError(str(deadline.unresolved)) from exc
            if deadline.expired and not isinstance(exc, SlowAnswer):
                raise SlowAnswer(_slow(deadline)) from exc
            raise


_PHASES = {
    "send": "the request was not sent",
    "head": "the answer's head was not complete",
    "body": "the answer's body was not complete",
}


def _slow(deadline: Deadline) -> str:
    return f"{_PHASES[deadline.phase]} after {deadline.timeout}s"


def _exchange(
    session: requests.Session,
    url: str,
    data: bytes,
    headers: dict[str, str],
    timeout: float,
    max_body: int,
    deadline: Deadline,
) -> Answer:
    with session.post(
        url, data=data, headers=headers, timeout=timeout, stream=True, allow_redirects=False
    ) as rsp:
        deadline.phase = "body"
        chunks: list[bytes] = []
        size = 0
        truncated = False
        try:
            while True:
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
        if deadline.expired:  # the socket was shut down: the body may look complete
            raise SlowAnswer(_slow(deadline))
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
