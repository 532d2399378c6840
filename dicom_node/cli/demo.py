"""``dicom-node demo-study``: write a synthetic study to try the node without real data."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

import typer

from dicom_node import synthetic


class Kind(StrEnum):
    cr = "cr"
    dx = "dx"
    ct = "ct"


def register(app: typer.Typer) -> None:
    """Add the ``demo-study`` command to ``app``."""

    @app.command("demo-study")
    def demo_study(
        out: Path = typer.Argument(..., help="Folder to write the DICOM files into."),
        kind: Kind = typer.Option(
            Kind.cr, "--kind", help="cr/dx: one chest X-ray; ct: a chest CT series."
        ),
        images: int = typer.Option(50, "--images", min=1, help="CT slices (ct only)."),
        seed: int = typer.Option(1, "--seed", help="Different seeds give different studies."),
    ) -> None:
        """Write a synthetic, IOD-conformant study (no real patient) to OUT."""
        patient = synthetic.Patient(patient_id=f"DEMO{seed:04d}", name="DEMO^PATIENT")
        if kind is Kind.ct:
            datasets = list(
                synthetic.iter_ct_series(images, patient, rows=256, cols=256, seed=seed)
            )
        elif kind is Kind.dx:
            datasets = [synthetic.make_dx(patient, seed=seed, rows=1024, cols=1024)]
        else:
            datasets = [synthetic.make_cr(patient, seed=seed, rows=1024, cols=1024)]
        paths = synthetic.write_files(datasets, out)
        typer.echo(
            f"wrote {len(paths)} {kind.value.upper()} instance(s) of study "
            f"{datasets[0].StudyInstanceUID} to {out}"
        )
