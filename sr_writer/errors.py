"""The one exception the result writers raise for bad input."""

from __future__ import annotations


class ResultWriteError(ValueError):
    """The inputs cannot be turned into conforming result objects.

    The message names the offending source instance, label or attribute. When this is
    raised, no result object has been returned: the writers build everything in memory
    and hand back all objects or none.
    """
