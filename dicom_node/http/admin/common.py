"""What every admin route shares: the router (a valid token before any parameter is
checked), the problem response, the job id and the paging of every list."""

from __future__ import annotations

from typing import Any, NamedTuple

from fastapi import APIRouter, Depends, Path, Query, Request, Response

from dicom_node.http.app import authorize


def _token(request: Request) -> None:
    """Any valid token, checked before the parameters are (401 comes before 422); each
    route then asks for its role."""
    authorize(request, "read")


router = APIRouter(prefix="/api", dependencies=[Depends(_token)])
PROBLEM = {"content": {"application/problem+json": {}}}
JobId = Path(ge=1, le=2**63 - 1, description="a job's id")

# Every list comes in pages: a default limit, a maximum, an offset and the total. A
# top-level array gives its total in this header; a list inside an object in
# ``<list>_total`` (and its offset in ``<list>_offset``).
TOTAL_HEADER = "X-Total-Count"
MAX_OFFSET = 2**31 - 1


class Paging(NamedTuple):
    """One list's page size: ``default`` items unless asked, at most ``maximum``."""

    default: int
    maximum: int

    def limit(self, what: str) -> Any:
        """The ``limit`` query parameter of ``what``."""
        return Query(
            self.default,
            ge=1,
            le=self.maximum,
            description=f"{what} in this page (at most {self.maximum})",
        )

    @staticmethod
    def offset(what: str) -> Any:
        """The ``offset`` query parameter of ``what``."""
        return Query(0, ge=0, le=MAX_OFFSET, description=f"{what} before this page")


STUDIES = Paging(50, 1000)
JOBS = Paging(50, 1000)
MODELS = Paging(100, 1000)
DESTINATIONS = Paging(100, 1000)
DESTINATION_STATUS = Paging(50, 500)  # each costs a few index seeks
# Inside one study; its instances: studies.INSTANCES_DEFAULT and INSTANCES_MAX.
STUDY_GROUPS = Paging(50, 1000)  # a series each, and again for each reprocess
STUDY_JOBS = Paging(50, 1000)
STUDY_RESULTS = Paging(500, 2000)  # a forward has one per instance
# Inside one job: its outputs, its delivery attempts and each attempt's responses (one
# per object sent; at most 200 × 500 of them in one answer).
JOB_OUTPUTS = Paging(500, 2000)
JOB_ATTEMPTS = Paging(50, 200)
ATTEMPT_RESPONSES = Paging(100, 500)


def total_header(what: str) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry documenting a top-level list's total."""
    header = {"description": f"{what} in all pages", "schema": {"type": "integer"}}
    return {200: {"headers": {TOTAL_HEADER: header}}}


def set_total(response: Response, total: int) -> None:
    """Give a top-level list's total in its header."""
    response.headers[TOTAL_HEADER] = str(total)
