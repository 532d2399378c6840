"""The log format of every node process (serve, job workers), one line per record.

A message can carry what a peer sent: an AE title, a UID, an Application Context Name,
a destination's answer. Control characters in it are escaped (a newline as ``\\n``), so
no peer can start a line of its own in the node's log and forge an entry. Tracebacks,
added after the message, keep their lines. Python warnings are logged the same way.
"""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# C0 controls and DEL, but tab, as Python writes them in a str's repr
_ESCAPES = {c: repr(chr(c))[1:-1] for c in [*range(0x20), 0x7F] if c != 0x09}


class OneLineFormatter(logging.Formatter):
    """:data:`FORMAT` with the message's control characters escaped."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = record.message.translate(_ESCAPES)
        return super().formatMessage(record)


def configure(level: str | int, pynetdicom_level: str | int | None = None) -> None:
    """Log to stderr at ``level``; pynetdicom at its own level if given."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(OneLineFormatter(FORMAT))
    logging.basicConfig(level=level, handlers=[handler])
    logging.captureWarnings(True)  # warnings.warn() text too (pydicom's carry peer input)
    if pynetdicom_level is not None:
        logging.getLogger("pynetdicom").setLevel(pynetdicom_level)
