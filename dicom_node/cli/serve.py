"""``dicom-node serve``: start the node."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def serve() -> None:
        """Start the node (not implemented yet)."""
        raise typer.Exit(2)
