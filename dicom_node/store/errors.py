"""What the store raises when it cannot write an instance."""

from __future__ import annotations


class StoreError(OSError):
    """Writing an instance failed; nothing was left behind."""


class ReserveError(StoreError):
    """Writing would take free space below the node's reserve."""
