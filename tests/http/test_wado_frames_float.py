"""WADO-RS frames of Float and Double Float Pixel Data (7FE0,0008 and 7FE0,0009), such
as the node's own Parametric Maps, with dicomweb-client against the running node: each
part is the frame's stored bytes (Rows x Columns x Samples x 4 or 8), as pydicom reads
them from the file; frame lists are checked as for Pixel Data; image media types are
refused (406: they are sent as stored), renderings are scaled over the frame's values;
the metadata names the float element with a BulkDataURI that gives its value."""

from __future__ import annotations

import dataclasses
import io

import highdicom as hd
import numpy as np
import pytest
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicom_node.synthetic import Patient, iter_ct_series
from sr_writer import ImageResult, WriteOptions, write_results
from tests.http.support import as_deflated, frames_url, stored_by_stow, uids
from tests.sr_writer.support import MODEL, WHEN, blob, labels
from tests.support.node_process import NodeProcess

FRAMES = 5
SIZE = 24
ELEMENT = {"float": "FloatPixelData", "double": "DoubleFloatPixelData"}
DTYPE = {"float": "<f4", "double": "<f8"}


def _ct() -> list[Dataset]:
    patient = Patient(patient_id="FLOATFRAMES")
    return list(iter_ct_series(FRAMES, patient, rows=SIZE, cols=SIZE, seed=41))


def _node_pmap() -> Dataset:
    """The node's own Parametric Map (32-bit float) of a CT series, its pneumothorax
    heatmap peaking at another height on each slice, so that every frame differs."""
    sources = _ct()
    results = [
        ImageResult(
            str(ds.SOPInstanceUID),
            None,
            MODEL,
            tuple(
                dataclasses.replace(lab, heatmap=blob(cy=0.1 + 0.2 * i, cx=0.5)) for lab in labels()
            ),
        )
        for i, ds in enumerate(sources)
    ]
    out = write_results(sources, results, WriteOptions(created_at=WHEN, parametric_map=True))
    [pmap] = out.pmaps
    return pmap


def _double_pmap() -> Dataset:
    """A Parametric Map of 64-bit floats, built by highdicom."""
    values = np.random.default_rng(9).normal(size=(FRAMES, SIZE, SIZE)) * 1e3
    mapping = hd.pm.RealWorldValueMapping(
        lut_label="value",
        lut_explanation="test value",
        unit=hd.sr.CodedConcept("1", "UCUM", "no units"),
        value_range=(float(values.min()), float(values.max())),
        slope=1.0,
        intercept=0.0,
    )
    return hd.pm.ParametricMap(
        source_images=_ct(),
        pixel_array=values,
        series_instance_uid=generate_uid(),
        series_number=90,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer="dicom-node tests",
        manufacturer_model_name="float frames",
        software_versions="1",
        device_serial_number="1",
        contains_recognizable_visual_features=False,
        real_world_value_mappings=[mapping],
        voi_lut_transformations=[hd.VOILUTTransformation(window_center=0.0, window_width=2e3)],
    )


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """The maps, stored by STOW-RS and read back from their files."""
    made = {
        "float": _node_pmap(),
        "double": _double_pmap(),
        "deflated": as_deflated(_node_pmap()),
    }
    made["deflated"].SOPInstanceUID = made["deflated"].file_meta.MediaStorageSOPInstanceUID = (
        generate_uid()
    )
    stored_by_stow(node, tmp_path_factory.mktemp("float-frames"), made)
    return made


@pytest.fixture(scope="module")
def client(node: NodeProcess) -> DICOMwebClient:
    return DICOMwebClient(node.http_url + "/dicomweb")


def _kind(name: str) -> str:
    return "double" if name == "double" else "float"


def _frames(ds: Dataset, kind: str) -> list[bytes]:
    """Each frame's bytes as pydicom reads them from the file."""
    pixels = ds.pixel_array  # (frames, rows, columns), float32 or float64
    assert pixels.shape == (FRAMES, SIZE, SIZE) and pixels.dtype == np.dtype(DTYPE[kind])
    frames = [np.ascontiguousarray(f).astype(DTYPE[kind]).tobytes() for f in pixels]
    assert b"".join(frames) == ds[ELEMENT[kind]].value  # and as stored
    assert len(set(frames)) == FRAMES  # each different
    return frames


@pytest.mark.parametrize("name", ["float", "double", "deflated"])
def test_frames_are_the_stored_floats(
    stored: dict[str, Dataset], client: DICOMwebClient, name: str
) -> None:
    """Frame 1, a middle one, the last, and several at once in the order asked (all
    answered 404 "no Pixel Data")."""
    ds = stored[name]
    assert ELEMENT[_kind(name)] in ds and "PixelData" not in ds
    expected = _frames(ds, _kind(name))
    size = SIZE * SIZE * (8 if name == "double" else 4)
    for numbers in ([1], [3], [FRAMES], [FRAMES, 1, 3], list(range(1, FRAMES + 1))):
        got = client.retrieve_instance_frames(*uids(ds), numbers)
        assert got == [expected[n - 1] for n in numbers], numbers
        assert all(len(part) == size for part in got)
    as_stored = (("application/octet-stream", "*"),)
    assert client.retrieve_instance_frames(*uids(ds), [2], media_types=as_stored) == [expected[1]]


def test_the_parts_are_octet_streams_in_explicit_vr_little_endian(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    r = requests.get(frames_url(node, stored["float"], "2"), timeout=10)
    assert r.status_code == 200, r.text
    content_type = r.headers["content-type"]
    assert 'type="application/octet-stream"' in content_type
    assert f"transfer-syntax={ExplicitVRLittleEndian}" in content_type


@pytest.mark.parametrize(
    ("frames", "status", "named"),
    [("6", 404, "6"), ("1,6", 404, "6"), ("0", 400, "0"), ("2,2", 400, "2"), ("x", 400, "x")],
)
@pytest.mark.parametrize("name", ["float", "double", "deflated"])
def test_bad_frame_lists_answer_problems(
    stored: dict[str, Dataset], node: NodeProcess, name: str, frames: str, status: int, named: str
) -> None:
    """As for Pixel Data: the frame named."""
    r = requests.get(frames_url(node, stored[name], frames), timeout=10)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["frame"] == named


@pytest.mark.parametrize(
    "accept",
    [
        "multipart/related; type=image/jpeg",
        "multipart/related; type=image/jp2",
        "multipart/related; type=application/octet-stream; transfer-syntax=1.2.840.10008.1.2.4.50",
    ],
)
def test_image_media_types_are_not_acceptable(
    stored: dict[str, Dataset], node: NodeProcess, accept: str
) -> None:
    """Float frames are sent as stored, never compressed: 406 naming what is offered."""
    r = requests.get(frames_url(node, stored["float"], "1"), headers={"Accept": accept}, timeout=10)
    assert r.status_code == 406, r.text
    assert r.json()["available"] == [ExplicitVRLittleEndian]


@pytest.mark.parametrize("name", ["float", "double"])
def test_rendered_frames_scale_the_frames_values(
    stored: dict[str, Dataset], client: DICOMwebClient, name: str
) -> None:
    """An 8-bit rendering of each frame, its values over the frame's own range (the
    map's window lies in its functional groups, which renderings do not read)."""
    ds = stored[name]
    for k in (1, 3, FRAMES):
        png = client.retrieve_instance_frames_rendered(*uids(ds), [k], media_types=("image/png",))
        got = np.asarray(Image.open(io.BytesIO(png)))
        values = ds.pixel_array[k - 1].astype(np.float64)
        scaled = (values - values.min()) / (values.max() - values.min()) * 255
        assert got.shape == (SIZE, SIZE)
        assert np.abs(got.astype(np.float64) - scaled).max() <= 1.0, k


def test_metadata_names_the_float_element_and_its_bulk_data_gives_it(
    stored: dict[str, Dataset], client: DICOMwebClient
) -> None:
    for name, tag, vr in (("float", "7FE00008", "OF"), ("double", "7FE00009", "OD")):
        ds = stored[name]
        body = client.retrieve_instance_metadata(*uids(ds))
        assert not [k for k in body if k.startswith("7FE000") and k != tag]
        assert body[tag]["vr"] == vr
        assert client.retrieve_bulkdata(body[tag]["BulkDataURI"]) == [ds[int(tag, 16)].value]
