"""A destination's host name resolved within a time limit.

``socket.getaddrinfo`` (which pynetdicom and urllib3 call before connecting) takes no
timeout: a resolver that never answers held a delivery worker for ever, past every
deadline. Here the lookup runs on a daemon thread and the caller waits at most the time
it has; a lookup that does not end in time is left to finish on its own thread, and at
most :data:`MAX_PENDING` lookups wait at once (a later one fails at once), so a hung
resolver costs a few threads, not one per attempt.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from typing import Any

__all__ = ["MAX_PENDING", "Unresolved", "addresses", "first_address"]

MAX_PENDING = 8  # lookups still running (hung ones included) at any time
_pending = threading.BoundedSemaphore(MAX_PENDING)


class Unresolved(OSError):
    """The host name was not resolved: no answer in time, or the resolver's error."""


def addresses(host: str, port: int, timeout: float, limit: float | None = None) -> list[Any]:
    """``socket.getaddrinfo(host, port, type=SOCK_STREAM)`` within ``timeout`` seconds;
    :class:`Unresolved` (one line naming ``host``, and ``limit`` if given: the time
    limit the caller has, of which ``timeout`` was left) otherwise."""
    if _is_address(host):  # nothing to look up
        return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    if not _pending.acquire(blocking=False):
        raise Unresolved(
            f"host name {host!r} not resolved: {MAX_PENDING} earlier lookups have not "
            "ended (the resolver does not answer)"
        )
    done = threading.Event()
    result: list[Any] = []
    failure: list[OSError] = []

    def lookup() -> None:
        try:
            result.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            failure.append(exc)
        finally:
            _pending.release()
            done.set()

    threading.Thread(target=lookup, name=f"resolve {host}", daemon=True).start()
    if not done.wait(timeout):
        within = timeout if limit is None else limit
        raise Unresolved(f"host name {host!r} not resolved within {within:g} s")
    if failure:
        exc = failure[0]
        raise Unresolved(f"host name {host!r} not resolved: {exc.strerror or exc}")
    return result


def first_address(host: str, timeout: float) -> str:
    """The address pynetdicom would connect to for ``host`` (its first IPv4 address,
    else its first IPv6 one), resolved within ``timeout`` s; ``host`` itself if it is an
    address already."""
    if _is_address(host):
        return host
    found = addresses(host, 0, timeout)
    for family in (socket.AF_INET, socket.AF_INET6):
        for entry in found:
            if entry[0] == family:
                return str(entry[4][0])
    raise Unresolved(f"host name {host!r} has no IPv4 or IPv6 address")


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True
