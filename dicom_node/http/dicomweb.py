"""DICOMweb routes under ``/dicomweb`` (PS3.18): STOW-RS (:mod:`.stow_routes`), QIDO-RS
(:mod:`.qido_routes`), WADO-RS with thumbnails (:mod:`.wado_routes`)."""

from __future__ import annotations

from fastapi import FastAPI

from dicom_node.http import qido_routes, stow_routes, wado_routes
from dicom_node.http.links import PREFIX


def register(app: FastAPI) -> None:
    """Add the DICOMweb routes to ``app``."""
    study, series, inst = "/studies/{study}", "/series/{series}", "/instances/{instance}"
    routes = [
        ("/studies", stow_routes.store_instances, "POST"),
        (study, stow_routes.store_instances, "POST"),
        ("/studies", qido_routes.search_studies, "GET"),
        ("/series", qido_routes.search_series, "GET"),
        ("/instances", qido_routes.search_instances, "GET"),
        (f"{study}/series", qido_routes.search_series, "GET"),
        (f"{study}/instances", qido_routes.search_instances, "GET"),
        (f"{study}{series}/instances", qido_routes.search_instances, "GET"),
        (study, wado_routes.retrieve, "GET"),
        (f"{study}{series}", wado_routes.retrieve, "GET"),
        (f"{study}{series}{inst}", wado_routes.retrieve, "GET"),
        (f"{study}/metadata", wado_routes.retrieve_metadata, "GET"),
        (f"{study}{series}/metadata", wado_routes.retrieve_metadata, "GET"),
        (f"{study}{series}{inst}/metadata", wado_routes.retrieve_metadata, "GET"),
        (f"{study}{series}{inst}/bulk/{{tag:path}}", wado_routes.retrieve_bulk, "GET"),
        (f"{study}{series}{inst}/rendered", wado_routes.retrieve_rendered, "GET"),
        (f"{study}{series}{inst}/frames/{{frames}}", wado_routes.retrieve_frames, "GET"),
        (
            f"{study}{series}{inst}/frames/{{frames}}/rendered",
            wado_routes.retrieve_frame_rendered,
            "GET",
        ),
        (f"{study}/thumbnail", wado_routes.retrieve_thumbnail, "GET"),
        (f"{study}{series}/thumbnail", wado_routes.retrieve_thumbnail, "GET"),
        (f"{study}{series}{inst}/thumbnail", wado_routes.retrieve_thumbnail, "GET"),
        (
            f"{study}{series}{inst}/frames/{{frames}}/thumbnail",
            wado_routes.retrieve_thumbnail,
            "GET",
        ),
    ]
    for path, endpoint, method in routes:
        app.add_api_route(PREFIX + path, endpoint, methods=[method], include_in_schema=False)
