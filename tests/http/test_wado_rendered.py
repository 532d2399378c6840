"""The rendering query parameters of PS3.18 8.3.5 on ``.../rendered`` (an instance and a
frame), fetched from the running node: ``window`` maps the stored values as its VOI LUT
Function says, ``viewport`` fits (a source region of) the image, ``quality`` sets the
JPEG quality, the ``accept`` parameter wins over the Accept header; malformed values get
problem JSON naming the parameter."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom.dataset import Dataset

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.http.support import native_multiframe, stored_by_stow, uids
from tests.support.node_process import NodeProcess

PNG, JPEG, PROBLEM = "image/png", "image/jpeg", "application/problem+json"


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Dataset]:
    """A 64 x 48 CT slice (Rescale -1024, stored 0 to about 1400, its own window 40/400)
    and a native multi-frame image."""
    patient = Patient(patient_id="RENDERQ")
    ct = next(iter_ct_series(1, patient, rows=48, cols=64, seed=141, study_uid=new_uid()))
    made = {"ct": ct, "mf": native_multiframe(3, 16, "RENDERQ")}
    stored_by_stow(node, tmp_path_factory.mktemp("rendered"), made)
    return made


def _url(node: NodeProcess, ds: Dataset) -> str:
    s, se, i = uids(ds)
    return f"{node.http_url}/dicomweb/studies/{s}/series/{se}/instances/{i}/rendered"


def _get(url: str, header: str | None = PNG, **params: str) -> requests.Response:
    """GET ``url`` with query ``params`` and ``header`` as its Accept header."""
    headers = {"Accept": header} if header else None
    return requests.get(url, params=params, headers=headers, timeout=30)


def _image(r: requests.Response, media: str = PNG) -> Image.Image:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    image = Image.open(io.BytesIO(r.content))
    image.load()
    return image


def _hu(ds: Dataset) -> np.ndarray:
    return ds.pixel_array.astype(np.float64) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _voi(x: np.ndarray, c: float, w: float, function: str) -> np.ndarray:
    """PS3.3 C.11.2.1.2 and C.11.2.1.3 with an 8-bit output range."""
    if function == "sigmoid":
        return 255 / (1 + np.exp(-4 * (x - c) / w))
    if function == "linear":
        c, w = c - 0.5, w - 1
    with np.errstate(divide="ignore", invalid="ignore"):  # a width of 1: no inside
        inside = ((x - c) / w + 0.5) * 255
    return np.where(x <= c - w / 2, 0.0, np.where(x > c + w / 2, 255.0, inside))


@pytest.mark.parametrize(
    ("center", "width", "function"),
    [(40, 400, "linear"), (-100, 900.5, "linear-exact"), (150, 300, "sigmoid"), (300, 1, "linear")],
)
def test_window_maps_stored_values_as_its_function_says(
    stored: dict[str, Dataset], node: NodeProcess, center: float, width: float, function: str
) -> None:
    ct = stored["ct"]
    got = np.asarray(_image(_get(_url(node, ct), window=f"{center},{width},{function}")))
    want = _voi(_hu(ct), center, width, function)
    assert got.shape == want.shape
    assert np.abs(got.astype(np.float64) - want).max() <= 0.5 + 1e-6
    # Without a function: linear. Without a window: the image's own (40/400, linear).
    if function == "linear":
        again = _image(_get(_url(node, ct), window=f"{center},{width}"))
        assert np.array_equal(np.asarray(again), got)
    own = np.asarray(_image(_get(_url(node, ct))))
    assert np.abs(own - _voi(_hu(ct), 40, 400, "linear")).max() <= 0.5 + 1e-6


def test_viewport_fits_the_image_or_a_source_region(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    url = _url(node, stored["ct"])
    for viewport, size in (("32,32", (32, 24)), ("100,30", (40, 30)), ("640,480", (640, 480))):
        assert _image(_get(url, viewport=viewport)).size == size, viewport
    whole = np.asarray(_image(_get(url, window="40,400")))
    region = _image(_get(url, viewport="16,10,8,4,16,10", window="40,400"))
    assert np.array_equal(np.asarray(region), whole[4:14, 8:24])  # sx 8, sy 4: 16 x 10
    flipped = _image(_get(url, viewport="16,10,8,4,-16,-10", window="40,400"))
    assert np.array_equal(np.asarray(flipped), whole[4:14, 8:24][::-1, ::-1])
    to_edge = _image(_get(url, viewport="100,100,60,40,,", window="40,400"))  # 4 x 8: x25
    assert to_edge.size == (50, 100)
    frame = url.replace("/rendered", "")
    mf = _url(node, stored["mf"]).replace("/rendered", "/frames/2/rendered")
    assert _image(_get(mf, viewport="8,8")).size == (8, 8)
    assert _image(_get(frame + "/frames/1/rendered", viewport="8,8")).size == (8, 6)


def test_quality_sets_the_jpeg_quality(stored: dict[str, Dataset], node: NodeProcess) -> None:
    url = _url(node, stored["ct"])
    sizes = [len(_get(url, JPEG, quality=str(q), viewport="256,192").content) for q in (5, 50, 95)]
    assert sizes[0] < sizes[1] < sizes[2], sizes
    assert _image(_get(url, JPEG, quality="5"), JPEG).format == "JPEG"
    assert _image(_get(url, PNG, quality="5")).format == "PNG"  # lossless: no quality


def test_the_accept_parameter_wins_over_the_header(
    stored: dict[str, Dataset], node: NodeProcess
) -> None:
    url = _url(node, stored["ct"])
    assert _image(_get(url, JPEG, accept=PNG)).format == "PNG"
    assert _image(_get(url, PNG, accept="image/jpeg"), JPEG).format == "JPEG"
    # A type the node cannot render gives way to the header's (PS3.18 8.7.8.1 step 3).
    assert _image(_get(url, PNG, accept="image/gif")).format == "PNG"
    assert _get(url, "image/gif", accept="image/gif").status_code == 406
    mf = _url(node, stored["mf"]).replace("/rendered", "/frames/1/rendered")
    assert _image(_get(mf, JPEG, accept=PNG)).format == "PNG"
    ct = uids(stored["ct"])
    thumb = f"{node.http_url}/dicomweb/studies/{ct[0]}/thumbnail"
    assert _image(_get(thumb, JPEG, accept=PNG)).format == "PNG"


@pytest.mark.parametrize(
    ("name", "values"),
    [
        ("viewport", ["0,10", "10", "a,b", "4097,10", "10,10,0,0,0,5", "10,10,-1,0,5,5"]),
        ("viewport", ["10,10,60,0,16,16", "10,10,0,0,65,5", "10,10,0,0,5", "10,10,x,0,5,5"]),
        ("window", ["40", "a,400", "40,400,cubic", "40,0", "40,0.5,linear", "40,-1,sigmoid"]),
        ("window", ["nan,400", "40,inf", "1e999,400", "40,400,linear,1"]),
        ("quality", ["0", "101", "x", "50.5", "-1", ""]),
    ],
)
def test_malformed_parameters_answer_400_naming_them(
    stored: dict[str, Dataset], node: NodeProcess, name: str, values: list[str]
) -> None:
    url = _url(node, stored["ct"])
    for value in values:
        r = _get(url, **{name: value})
        assert r.status_code == 400, (name, value, r.text)
        assert r.headers["content-type"] == PROBLEM
        body = r.json()
        assert body["parameter"] == name and name in body["detail"], (value, body)
    r = requests.get(f"{url}?{name}={values[0]}&{name}={values[0]}", timeout=30)
    assert r.status_code == 400 and r.json()["parameter"] == name  # given twice
