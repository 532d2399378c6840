"""A stand-in for a DNS resolver that never answers (a fault a test cannot cause).

``socket.getaddrinfo``, what pynetdicom and urllib3 call to resolve a name, blocks for
names ending in ``.hang.invalid`` (until the test ends, at most ``hang_s``), fails at
once for those ending in ``.none.invalid``, and resolves any other name as usual.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator

import pytest

HANG_S = 20.0  # a lookup of a hanging name fails after this (only without the fixes)


@pytest.fixture
def hanging_resolver(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The stand-in for the test (import this fixture into the test module)."""
    release = threading.Event()
    real = socket.getaddrinfo

    def getaddrinfo(host: object, *args: object, **kwargs: object) -> object:
        if isinstance(host, str) and host.endswith(".hang.invalid"):
            release.wait(HANG_S)
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if isinstance(host, str) and host.endswith(".none.invalid"):
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    try:
        yield
    finally:
        release.set()  # the lookups still waiting end
