"""The admin API's C-ECHO of a destination whose host name the resolver never answers
for: the echo answers within the destination's timeout that the name was not resolved
(pynetdicom resolved it itself, with no time limit: the request and a server thread were
held until the resolver gave up).

As in tests/delivery/test_unresolved_host.py, a resolver that hangs cannot be caused
here for real: ``socket.getaddrinfo`` is substituted by one that blocks for the names
ending in ``.hang.invalid`` (until the test ends, at most ``HANG_S``), fails at once
for those ending in ``.none.invalid``, and resolves any other name as usual. Everything
else is real: the node, its HTTP server, the request.
"""

from __future__ import annotations

from pathlib import Path

import requests

from tests.http.support import inprocess_node
from tests.support import resolver


def test_echo_of_a_destination_whose_name_is_not_resolved_answers_in_its_timeout(
    hanging_resolver: None, tmp_path: Path
) -> None:
    """A name whose lookup hangs, and one that does not exist (pynetdicom's gaierror was
    a 500): each echo answers that it could not connect, and why."""
    pacs = {"kind": "dimse", "ae_title": "PACS", "port": 104, "timeout": 1}
    config = {
        "destinations": [
            {**pacs, "name": "hung", "host": "pacs.hang.invalid"},
            {**pacs, "name": "none", "host": "pacs.none.invalid"},
        ]
    }
    with inprocess_node(tmp_path, config) as node:
        api = f"http://127.0.0.1:{node.config.http.port}/api/destinations"
        answers = [
            requests.post(f"{api}/{n}/echo", timeout=2 * resolver.HANG_S) for n in ("hung", "none")
        ]
    assert [(r.status_code, r.json()) for r in answers] == [
        (
            200,
            {
                "destination": "hung",
                "ok": False,
                "status": None,
                "detail": "cannot connect to pacs.hang.invalid:104: host name "
                "'pacs.hang.invalid' not resolved within 1 s",
            },
        ),
        (
            200,
            {
                "destination": "none",
                "ok": False,
                "status": None,
                "detail": "cannot connect to pacs.none.invalid:104: host name "
                "'pacs.none.invalid' not resolved: Name or service not known",
            },
        ),
    ]
