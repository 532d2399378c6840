"""WADO-RS thumbnails (PS3.18 10.4.1.1.4: ``.../thumbnail`` of a study, a series, an
instance and a frame) fetched from the running node: each is a JPEG or PNG that fits the
asked viewport, made from the instance the node documents as representative (the middle
image of a series by Instance Number; a study's first image series by Series Number);
bad input gets problem JSON. dicomweb-client (0.61.2) has no thumbnail methods: the
requests library fetches them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import requests
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from dicom_node.synthetic import Patient, iter_ct_series, new_uid
from tests.http.support import (
    MF_WORD_SC,
    ct_slice,
    drop,
    renamed,
    sr_without_pixels,
    stored_by_stow,
    uids,
)
from tests.support.node_process import NodeProcess

PATIENT = "THUMBS"
PROBLEM = "application/problem+json"
# Instance Numbers of the CT slices, stored in this order with ascending SOP Instance
# UIDs: the middle by number is 7, the middle by UID (or as stored) is 10.
NUMBERS = [7, 2, 10, 1, 30]


def _sr(study: str) -> Dataset:
    """A Basic Text SR (no Pixel Data) in ``study``, series number 1."""
    ds = sr_without_pixels(131, PATIENT)
    ds.SeriesNumber, ds.StudyInstanceUID = 1, study
    return ds


def _multiframe(study: str, series: str) -> Dataset:
    """Three 12 x 12 frames, each different, series number 3."""
    ds = renamed(ct_slice(132, size=12), PATIENT, MF_WORD_SC)
    frames = np.stack([np.full((12, 12), 100 * (i + 1), np.uint16) for i in range(3)])
    frames[:, 0, :] = np.arange(12, dtype=np.uint16)
    frames[:, :, 0] = 7 * np.arange(3, dtype=np.uint16)[:, None]  # frames differ rendered
    drop(ds, "RescaleIntercept", "RescaleSlope", "RescaleType", "WindowCenter", "WindowWidth")
    ds.PixelRepresentation, ds.NumberOfFrames, ds.PixelData = 0, 3, frames.tobytes()
    ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, series, 3
    return ds


@pytest.fixture(scope="module")
def stored(node: NodeProcess, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A study of an SR (series 1), five CT slices (series 2) and a 3-frame image (series
    3, whose Series Instance UID sorts before the CT's); and a study of an SR alone."""
    folder = tmp_path_factory.mktemp("thumbnails")
    study, root = new_uid(), generate_uid(prefix=None)  # 2.25.x: room for suffixes
    cts = list(iter_ct_series(5, Patient(patient_id=PATIENT), rows=32, cols=32, seed=133))
    for k, (ds, number) in enumerate(zip(cts, NUMBERS, strict=True)):
        ds.StudyInstanceUID, ds.SeriesInstanceUID, ds.SeriesNumber = study, root + ".9", 2
        ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = f"{root}.9.{k + 1}"
        ds.InstanceNumber = number
    made = {"sr": _sr(study), "word": _multiframe(study, root + ".1"), "lone_sr": _sr(new_uid())}
    made.update({f"ct{n}": ds for ds, n in zip(cts, NUMBERS, strict=True)})
    stored_by_stow(node, folder, made)
    return made


def _url(node: NodeProcess, ds: Dataset, level: str) -> str:
    s, se, i = uids(ds)
    paths = {
        "study": f"/studies/{s}",
        "series": f"/studies/{s}/series/{se}",
        "instance": f"/studies/{s}/series/{se}/instances/{i}",
    }
    return f"{node.http_url}/dicomweb{paths[level]}"


def _get(url: str, viewport: str | None = None, accept: str | None = None) -> requests.Response:
    params = {"viewport": viewport} if viewport else None
    headers = {"Accept": accept} if accept else None
    return requests.get(url, params=params, headers=headers, timeout=30)


def _image(r: requests.Response, media: str = "image/png") -> Image.Image:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == media
    image = Image.open(io.BytesIO(r.content))
    assert image.format == {"image/png": "PNG", "image/jpeg": "JPEG"}[media]
    image.load()
    return image


def test_each_resource_is_an_image_that_fits_the_viewport(stored: dict, node: NodeProcess) -> None:
    ct, word = stored["ct7"], stored["word"]
    resources = [
        _url(node, ct, "study") + "/thumbnail",  # a 32 x 32 CT
        _url(node, ct, "series") + "/thumbnail",
        _url(node, ct, "instance") + "/thumbnail",
        _url(node, word, "instance") + "/frames/2/thumbnail",  # 12 x 12
    ]
    for url in resources:
        for viewport, size in (("16,48", 16), ("100,60", 60), ("200,200", 200)):
            assert _image(_get(url, viewport, "image/png")).size == (size, size), url
        # No Accept: JPEG; no viewport: at most 128 x 128, aspect ratio kept.
        assert _image(_get(url), "image/jpeg").size == (128, 128)
        jpeg = _image(_get(url, "20,30", "image/jpeg, image/png;q=0.5"), "image/jpeg")
        assert jpeg.size == (20, 20)


def _pixels(r: requests.Response) -> np.ndarray:
    return np.asarray(_image(r))


def test_thumbnails_show_the_representative_instance(stored: dict, node: NodeProcess) -> None:
    ct, word = stored["ct7"], stored["word"]
    png = "image/png"
    series = _pixels(_get(_url(node, ct, "series") + "/thumbnail", "32,32", png))
    middle = _pixels(_get(_url(node, ct, "instance") + "/rendered", accept=png))
    assert np.array_equal(series, middle)  # Instance Number 7, at its own size
    for other in ("ct10", "ct1"):  # the middle as stored, and the first by number
        rendered = _pixels(_get(_url(node, stored[other], "instance") + "/rendered", accept=png))
        assert not np.array_equal(series, rendered), other
    study = _pixels(_get(_url(node, ct, "study") + "/thumbnail", "32,32", png))
    assert np.array_equal(study, series)  # series 2: the SR has no image, series 3 is later
    mf = _url(node, word, "instance")
    whole = _pixels(_get(mf + "/thumbnail", "12,12", png))
    frames = [_pixels(_get(f"{mf}/frames/{k}/rendered", accept=png)) for k in (1, 2, 3)]
    assert np.array_equal(whole, frames[1])  # a multi-frame instance: its middle frame
    third = _pixels(_get(mf + "/frames/3/thumbnail", "12,12", png))
    assert np.array_equal(third, frames[2]) and not np.array_equal(third, frames[1])
    word_series = _pixels(_get(_url(node, word, "series") + "/thumbnail", "12,12", png))
    assert np.array_equal(word_series, frames[1])


def _problem(r: requests.Response, status: int) -> dict:
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"] == PROBLEM
    body = r.json()
    assert body["status"] == status and body["detail"]
    return body


def test_bad_requests_get_problem_json(stored: dict, node: NodeProcess) -> None:
    ct, word, sr, lone = stored["ct7"], stored["word"], stored["sr"], stored["lone_sr"]
    base = f"{node.http_url}/dicomweb"
    s, se, i = uids(ct)
    for path in (
        "/studies/1.2.3/thumbnail",
        f"/studies/{s}/series/1.2.3/thumbnail",
        f"/studies/{s}/series/{se}/instances/1.2.3/thumbnail",
        f"/studies/{s}/series/{se}/instances/1.2.3/frames/1/thumbnail",
    ):
        assert "no such" in _problem(_get(base + path), 404)["detail"]
    # An SR: no image to make a thumbnail of (its series and a study of it alone).
    for url in (
        _url(node, sr, "instance") + "/thumbnail",
        _url(node, sr, "instance") + "/frames/1/thumbnail",
        _url(node, sr, "series") + "/thumbnail",
        _url(node, lone, "study") + "/thumbnail",
    ):
        assert "no image" in _problem(_get(url), 404)["detail"], url
    url = _url(node, ct, "instance") + "/thumbnail"
    for viewport in ("0,10", "10,-1", "a,b", "10", "10,10,0,0,5,5", "1025,10", "10,,"):
        assert "viewport" in _problem(_get(url, viewport), 400)["detail"], viewport
    for accept in ("image/gif", "application/dicom", "image/jp2", "text/html"):
        _problem(_get(url, accept=accept), 406)
    mf = _url(node, word, "instance")
    _problem(_get(mf + "/frames/4/thumbnail"), 404)
    _problem(_get(mf + "/frames/1,2/thumbnail"), 400)
    _problem(_get(mf + "/frames/0/thumbnail"), 400)
