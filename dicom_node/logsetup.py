"""The log format of every node process (serve, job workers, STOW-RS store processes)."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def configure(level: str | int, pynetdicom_level: str | int | None = None) -> None:
    """Log to stderr at ``level``; pynetdicom at its own level if given."""
    logging.basicConfig(level=level, stream=sys.stderr, format=FORMAT)
    if pynetdicom_level is not None:
        logging.getLogger("pynetdicom").setLevel(pynetdicom_level)
