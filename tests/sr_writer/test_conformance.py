"""Every kind of object written passes dciodvfy with zero errors; the SR passes DCMTK."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from sr_writer import WriteOptions
from tests.support.dcmtk import dcmtk_tool
from tests.support.dicom3tools import dciodvfy

from .support import (
    SOURCES,
    UTF8_NOTE,
    WHEN,
    needs_dciodvfy,
    needs_dcmtk,
    save,
    write,
)

# The only warnings accepted; each is justified in docs/sr_writer.md.
ALLOWED_WARNINGS = {
    # IHE AIR asks for Device UID in the algorithm's Contributing Equipment item;
    # the dicom3tools dictionary predates it in that sequence.
    "Warning - Attribute is not present in standard DICOM IOD - (0x0018,0x1002) UI Device UID",
    "Warning - Dicom dataset contains attributes not present in standard DICOM IOD - "
    "this is a Standard Extended SOP Class",
    # Parametric Map: highdicom writes Derived Pixel Contrast QUANTITY (the value the
    # Parametric Map IOD uses for a map of a quantity); dicom3tools lists an older set of
    # defined terms (defined terms may be extended).
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Image Type>",
    "Warning - Unrecognized defined term <QUANTITY> for value 4 of attribute <Frame Type>",
}


@needs_dciodvfy
@pytest.mark.parametrize("kind", sorted(SOURCES))
@pytest.mark.parametrize("sr_labels", ["all", "positive"])
def test_every_object_passes_dciodvfy(kind: str, sr_labels: str, tmp_path: Path) -> None:
    sources = SOURCES[kind]()
    out = write(
        sources,
        WriteOptions(
            created_at=WHEN, sr_labels=sr_labels, heatmaps="positive", parametric_map=True
        ),
    )
    assert out.heatmaps and out.card is not None and out.kos is not None
    assert bool(out.pmaps) == (kind == "ct")  # radiographs have no Frame of Reference
    objects = {"sr": out.sr, "card": out.card, "kos": out.kos}
    objects.update({f"heatmap{i}": sc for i, sc in enumerate(out.heatmaps)})
    objects.update({f"pmap{i}": pm for i, pm in enumerate(out.pmaps)})
    for name, ds in objects.items():
        errors, warnings = dciodvfy(save(ds, tmp_path, name))
        assert errors == [], f"{kind} {name}: {errors}"
        unexpected = set(warnings) - ALLOWED_WARNINGS
        assert not unexpected, f"{kind} {name}: new warnings {unexpected}"


@needs_dciodvfy
def test_no_finding_statement_passes_dciodvfy(tmp_path: Path) -> None:
    from .support import result_for

    sources = SOURCES["cr"]()
    results = [result_for(sources[0], pneumothorax=0.1)]
    out = write(sources, WriteOptions(created_at=WHEN, sr_labels="positive"), results)
    errors, warnings = dciodvfy(save(out.sr, tmp_path, "sr"))
    assert errors == []
    assert set(warnings) <= ALLOWED_WARNINGS


# DCMTK 3.6.7 cannot check values in UTF-8 and says so once per file; the SR of a demo
# model is UTF-8 because its notice carries an em dash (docs/sr_writer.md).


@needs_dcmtk
@pytest.mark.parametrize("kind", ["cr", "ct"])
@pytest.mark.parametrize("sr_labels", ["all", "positive"])
@pytest.mark.parametrize("demo", [True, False], ids=["demo", "clinical"])
def test_dcmtk_parses_and_renders_sr(kind: str, sr_labels: str, demo: bool, tmp_path: Path) -> None:
    from .support import MODEL, result_for

    sources = SOURCES[kind]()
    model = dataclasses.replace(MODEL, demo=demo)
    results = [result_for(ds, model, pneumothorax=0.2) for ds in sources]  # all negative
    out = write(sources, WriteOptions(created_at=WHEN, sr_labels=sr_labels), results)
    path = save(out.sr, tmp_path, "sr")
    dump = subprocess.run(
        [dcmtk_tool("dsrdump"), "+Pt", str(path)], capture_output=True, text=True, timeout=60
    )
    assert dump.returncode == 0, dump.stderr
    assert out.sr.SpecificCharacterSet == ("ISO_IR 192" if demo else "ISO_IR 100")
    assert dump.stderr == (UTF8_NOTE if demo else ""), dump.stderr
    assert "Imaging Measurement Report" in dump.stdout
    html = subprocess.run(["dsr2html", str(path)], capture_output=True, text=True, timeout=60)
    assert html.returncode == 0 and html.stderr == (UTF8_NOTE if demo else ""), html.stderr
    expected = "No finding above threshold" if sr_labels == "positive" else "Pneumothorax"
    assert expected in html.stdout


@needs_dciodvfy
def test_a_source_in_iso_2022_gets_every_object(tmp_path: Path) -> None:
    """A Japanese source (ISO 2022 IR 87 after the default repertoire, whose first value
    is empty, PS3.3 C.12.1.1.2): every object is written in a character set that holds
    its patient's name, and passes dciodvfy. The KOS used to copy the source's
    character set and highdicom refused its empty first value: nothing was written."""
    import pydicom

    source = SOURCES["cr"]()[0]
    source.SpecificCharacterSet = ["", "ISO 2022 IR 87"]
    source.PatientName = "Yamada^Tarou=山田^太郎=やまだ^たろう"
    source = pydicom.dcmread(save(source, tmp_path, "source"))
    out = write([source], WriteOptions(created_at=WHEN, heatmaps="positive"))
    assert out.kos is not None and out.card is not None
    objects = {"sr": out.sr, "card": out.card, "kos": out.kos}
    objects.update({f"heatmap{i}": sc for i, sc in enumerate(out.heatmaps)})
    for name, ds in objects.items():
        path = save(ds, tmp_path, name)
        assert pydicom.dcmread(path).PatientName == source.PatientName, name
        errors, warnings = dciodvfy(path)
        assert errors == [], f"{name}: {errors}"
        assert set(warnings) <= ALLOWED_WARNINGS, f"{name}: {set(warnings)}"
