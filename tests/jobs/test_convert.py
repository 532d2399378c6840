"""ai's results reach sr_writer field for field, with nothing lost."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import ai.types as a
import sr_writer.inputs as w
from dicom_node.jobs.convert import image_results


def test_contracts_have_the_same_fields() -> None:
    for name in ("Code", "ModelIdentity", "LabelResult", "ImageResult"):
        fields_a = [f.name for f in dataclasses.fields(getattr(a, name))]
        fields_w = [f.name for f in dataclasses.fields(getattr(w, name))]
        assert fields_a == fields_w, name


def test_image_results_round_trip() -> None:
    model = a.ModelIdentity("m", "1.0", "acme", "2.25.1", "demo", True)
    heat = np.full((7, 7), 0.5, np.float32)
    src = a.ImageResult(
        "1.2.3",
        None,
        model,
        (
            a.LabelResult(
                "Effusion", a.Code("60046008", "SCT", "Pleural effusion"), 0.7, 0.5, True, heat
            ),
            a.LabelResult("Other", a.Code("X1", "99SITE", "Other"), 0.1, 0.5, False, None),
        ),
    )
    [out] = image_results([src])
    assert out.sop_instance_uid == "1.2.3" and out.model.device_uid == "2.25.1"
    assert out.labels[0].code == w.Code("60046008", "SCT", "Pleural effusion")
    assert out.labels[0].heatmap is heat and out.labels[1].heatmap is None
    assert out.labels[0].probability == 0.7 and out.labels[1].positive is False


def test_a_label_without_code_is_refused_naming_the_field() -> None:
    model = a.ModelIdentity("m", "1.0", "acme", "2.25.1", "demo", True)
    label = a.LabelResult("Other", None, 0.1, 0.5, False, None)
    with pytest.raises(TypeError, match="LabelResult.code of label 'Other'"):
        image_results([a.ImageResult("1.2.3", None, model, (label,))])
