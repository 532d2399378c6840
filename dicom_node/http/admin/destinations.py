"""Result destinations: list, status from the delivery record, C-ECHO test."""

from __future__ import annotations

import threading
from typing import Any

from fastapi import Request, Response
from starlette.concurrency import run_in_threadpool

from dicom_node.delivery import resolve
from dicom_node.http.admin.common import (
    DESTINATION_STATUS,
    DESTINATIONS,
    PROBLEM,
    Paging,
    router,
    set_total,
    total_header,
)
from dicom_node.http.app import authorize, node_of
from dicom_node.http.problem import Problem
from dicom_node.http.schemas import (
    DestinationOut,
    EchoOut,
)
from dicom_node.jobs.destination_status import (
    DestinationStatus,
    destination_status,
    known_destinations,
)


@router.get(
    "/destinations",
    response_model=list[DestinationOut],
    responses=total_header("destinations"),
    tags=["destinations"],
)
def list_destinations(
    request: Request,
    response: Response,
    limit: int = DESTINATIONS.limit("destinations"),
    offset: int = Paging.offset("destinations"),
) -> list[DestinationOut]:
    """Configured result destinations (credentials never shown)."""
    authorize(request, "read")
    configured = node_of(request).config.destinations
    set_total(response, len(configured))
    out = []
    for d in configured[offset : offset + limit]:
        target = f"{d.ae_title}@{d.host}:{d.port}" if d.kind == "dimse" else getattr(d, "url", "")
        out.append(DestinationOut(name=d.name, kind=d.kind, target=target))
    return out


def _names(request: Request) -> tuple[list[str], list[str]]:
    """Every destination name (configured, then those on record), and the configured."""
    node = node_of(request)
    configured = [d.name for d in node.config.destinations]
    return list(dict.fromkeys([*configured, *known_destinations(node.db)])), configured


@router.get(
    "/destinations/status",
    response_model=list[DestinationStatus],
    responses=total_header("destinations"),
    tags=["destinations"],
)
def destinations_status(
    request: Request,
    response: Response,
    limit: int = DESTINATION_STATUS.limit("destinations"),
    offset: int = Paging.offset("destinations"),
) -> list[DestinationStatus]:
    """What happened at each destination (configured, then those named by a delivery on
    record): last attempt, attempts in the last 24 h, pending deliveries, last error."""
    authorize(request, "read")
    names, configured = _names(request)
    set_total(response, len(names))
    page = names[offset : offset + limit]
    return destination_status(node_of(request).db, page, configured=configured)


@router.get(
    "/destinations/{name}/status",
    response_model=DestinationStatus,
    responses={404: PROBLEM},
    tags=["destinations"],
)
def destination_status_one(request: Request, name: str) -> DestinationStatus:
    """What happened at one destination: last attempt, attempts in the last 24 h,
    pending deliveries, last error."""
    authorize(request, "read")
    configured = [d.name for d in node_of(request).config.destinations]
    [status] = destination_status(node_of(request).db, [name], configured=configured)
    if not status.configured and status.last_attempt is None and not status.pending_jobs:
        raise Problem(404, "Not Found", f"no destination {name!r}, and no delivery to one")
    return status


# Destinations being echoed now: one echo each at a time. An echo to a peer that does not
# answer holds a worker thread for the destination's timeout, and 40 concurrent ones held
# every thread of the server.
_ECHOING: set[str] = set()
_ECHOING_LOCK = threading.Lock()


def _echo_once(dest: Any) -> EchoOut:
    """:func:`_echo`, or Problem 409 while another echo of ``dest`` runs."""
    with _ECHOING_LOCK:
        if dest.name in _ECHOING:
            raise Problem(409, "Conflict", f"an echo of {dest.name!r} is already under way")
        _ECHOING.add(dest.name)
    try:
        return _echo(dest)
    finally:
        with _ECHOING_LOCK:
            _ECHOING.discard(dest.name)


def _echo(dest: Any) -> EchoOut:
    from pynetdicom import AE
    from pynetdicom.sop_class import Verification

    ae = AE(ae_title=dest.calling_ae_title)
    ae.add_requested_context(Verification)
    # The destination's timeout, as its deliveries have: connecting included (without it,
    # a peer that drops the SYN held the request and a worker thread about 2 minutes).
    ae.connection_timeout = ae.acse_timeout = dest.timeout
    ae.dimse_timeout = ae.network_timeout = dest.timeout
    try:
        # pynetdicom resolves a host name with no time limit (and raises on a name that
        # does not resolve): resolved here within the timeout, as deliveries do.
        address = resolve.first_address(dest.host, dest.timeout)
        assoc = ae.associate(address, dest.port, ae_title=dest.ae_title)
    except (OSError, ValueError, RuntimeError) as exc:
        return EchoOut(
            destination=dest.name,
            ok=False,
            status=None,
            detail=f"cannot connect to {dest.host}:{dest.port}: {exc}",
        )
    if not assoc.is_established:
        return EchoOut(
            destination=dest.name,
            ok=False,
            status=None,
            detail="association rejected, aborted or never connected",
        )
    try:
        rsp = assoc.send_c_echo()
    finally:
        assoc.release()
    status = int(rsp.Status) if "Status" in rsp else None
    return EchoOut(
        destination=dest.name,
        ok=status == 0,
        status=status,
        detail="C-ECHO answered" if status is not None else "no C-ECHO response",
    )


@router.post(
    "/destinations/{name}/echo",
    response_model=EchoOut,
    responses={404: PROBLEM, 400: PROBLEM, 409: PROBLEM},
    tags=["destinations"],
)
async def echo_destination(request: Request, name: str) -> EchoOut:
    """C-ECHO a DIMSE destination."""
    authorize(request, "admin")
    dest = next((d for d in node_of(request).config.destinations if d.name == name), None)
    if dest is None:
        raise Problem(404, "Not Found", f"no destination {name!r}")
    if dest.kind != "dimse":
        raise Problem(400, "Bad Request", f"destination {name!r} is {dest.kind}, not DIMSE")
    return await run_in_threadpool(_echo_once, dest)
