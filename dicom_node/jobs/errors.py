"""How a job stage fails, typed by what retrying can do.

- :class:`TransientJobError`: it may work later (a destination down, a full disk, the
  database busy, the inference runtime out of memory). The job is retried with backoff.
- :class:`PermanentJobError`: the same inputs fail the same way every time (an unknown
  model or destination, an image the model cannot take, results that cannot be
  written). Recorded once with its reason, never retried.
- Any other exception escaping a stage is a bug in the node: logged with its traceback
  and recorded as an internal error, never retried (``dicom-node jobs retry`` once fixed).

Each stage maps the library errors it expects to the first two at its boundary.
"""

from __future__ import annotations


class JobError(Exception):
    """A failure a job stage expected and typed."""


class TransientJobError(JobError):
    """Retrying later may succeed."""


class PermanentJobError(JobError):
    """Retrying cannot mend it."""


class JobCancelled(Exception):
    """An admin cancelled the job while it ran (not a failure)."""


# What a model raises for an image it cannot take (DecodeError and PreprocessError are
# ValueErrors): deterministic, so permanent. Runtime and resource errors stay transient.
DETERMINISTIC = (ValueError, TypeError, IndexError, KeyError, AttributeError)


def one_line(text: str) -> str:
    """``text`` with its line breaks and runs of spaces collapsed (for job.error and logs)."""
    return " ".join(text.split())
