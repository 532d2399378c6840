"""The node's results (SR, heatmap SC) of a CR stored by STOW-RS appear through QIDO-RS and
WADO-RS once its job is done, as any instance would."""

from __future__ import annotations

import io
from pathlib import Path

import pydicom
import requests
from dicomweb_client.api import DICOMwebClient
from PIL import Image
from pydicom.dataset import Dataset
from pydicom.encaps import generate_frames

from dicom_node.synthetic import Patient, make_cr, new_uid, write_files
from tests.support.index import query
from tests.support.node_process import NodeProcess
from tests.support.waiting import wait_until

CONFIG = {"http": {"web_source": {"ae_title": "WEBSRC", "quiet_seconds": 1}}}


def test_results_of_a_cr_are_found_and_retrieved(tmp_path: Path) -> None:
    cr = make_cr(Patient(patient_id="RES-1"), rows=256, cols=256, seed=81, study_uid=new_uid())
    cr.SeriesNumber = 9999  # after the results' (9901 on): the thumbnail must still be the CR
    files = write_files([cr], tmp_path / "cr")
    with NodeProcess(tmp_path / "node", CONFIG) as node:
        client = DICOMwebClient(node.http_url + "/dicomweb")
        client.store_instances([pydicom.dcmread(files[0])])
        study = cr.StudyInstanceUID
        assert [Dataset.from_json(s).Modality for s in client.search_for_series(study)] == ["CR"]
        wait_until(
            lambda: (
                query(node.data_dir, "SELECT state FROM jobs WHERE study_uid = :s", s=study)
                == [("done",)]
            ),
            timeout=120,
        )
        outputs = dict(
            query(
                node.data_dir,
                "SELECT o.sop_instance_uid, o.path FROM "
                "job_outputs o JOIN jobs j ON j.id = o.job_id "
                "WHERE j.study_uid = :s",
                s=study,
            )
        )
        assert outputs, "the job wrote no result"
        series = [Dataset.from_json(s) for s in client.search_for_series(study)]
        assert {s.Modality for s in series} >= {"CR", "SR"}
        instances = [Dataset.from_json(i) for i in client.search_for_instances(study)]
        assert {i.SOPInstanceUID for i in instances} == {cr.SOPInstanceUID, *outputs}
        studies = client.search_for_studies(search_filters={"PatientID": "RES-1"})
        assert "SR" in Dataset.from_json(studies[0]).ModalitiesInStudy
        framed: list[str] = []
        for sop, path in outputs.items():
            ds = next(i for i in instances if i.SOPInstanceUID == sop)
            got = client.retrieve_instance(
                study, ds.SeriesInstanceUID, sop, media_types=(("application/dicom", "*"),)
            )
            assert got == pydicom.dcmread(path)
            if "PixelData" in got:  # the heatmap: by frames too, as a viewer fetches it
                framed.append(sop)
                n = int(got.get("NumberOfFrames") or 1)
                parts = client.retrieve_instance_frames(
                    study, ds.SeriesInstanceUID, sop, list(range(1, n + 1))
                )
                if got.file_meta.TransferSyntaxUID.is_compressed:
                    assert parts == list(generate_frames(got.PixelData, number_of_frames=n))
                else:
                    size = len(got.PixelData) // n
                    assert b"".join(parts) == got.PixelData[: size * n] and len(parts) == n
        assert framed, "no result with pixel data (the heatmap SC) to fetch by frames"
        # The study's thumbnail is the CR's, never the heatmap's; the heatmap's series has
        # its own.
        study_url = f"{node.http_url}/dicomweb/studies/{study}"
        png = {"Accept": "image/png"}
        thumb = requests.get(study_url + "/thumbnail?viewport=256,256", headers=png, timeout=30)
        cr_url = f"{study_url}/series/{cr.SeriesInstanceUID}/instances/{cr.SOPInstanceUID}"
        rendered = requests.get(cr_url + "/rendered", headers=png, timeout=30)
        assert thumb.status_code == rendered.status_code == 200
        assert _pixels(thumb.content) == _pixels(rendered.content)
        heatmap = next(i for i in instances if i.SOPInstanceUID == framed[0])
        series_url = f"{study_url}/series/{heatmap.SeriesInstanceUID}/thumbnail?viewport=256,256"
        other = requests.get(series_url, headers=png, timeout=30)
        assert other.status_code == 200 and _pixels(other.content) != _pixels(thumb.content)


def _pixels(png: bytes) -> bytes:
    image = Image.open(io.BytesIO(png))
    assert image.format == "PNG"
    return image.tobytes()
