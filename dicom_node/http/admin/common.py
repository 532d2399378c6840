"""What every admin route shares: the router (a valid token before any parameter is
checked), the problem response, the job id and list limit parameters."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path, Query, Request

from dicom_node.http.app import authorize


def _token(request: Request) -> None:
    """Any valid token, checked before the parameters are (401 comes before 422); each
    route then asks for its role."""
    authorize(request, "read")


router = APIRouter(prefix="/api", dependencies=[Depends(_token)])
PROBLEM = {"content": {"application/problem+json": {}}}
JobId = Path(ge=1, le=2**63 - 1, description="a job's id")
Limit = Query(50, ge=1, le=1000)  # the list routes' page
