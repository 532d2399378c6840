"""torchxrayvision importer: the exported package matches PyTorch on the same input."""

from __future__ import annotations

import numpy as np
import pytest

from ai.importers.torchxrayvision import ImporterUnavailable, load_xrv

try:
    torch, xrv = load_xrv()
except ImporterUnavailable as exc:  # only when torch/torchxrayvision are not importable
    pytest.skip(f"torch/torchxrayvision not importable: {exc}", allow_module_level=True)

from ai import ModelRegistry, RuntimeOptions
from ai.importers.torchxrayvision import build_xrv_model, import_model
from dicom_node.synthetic import make_dx

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("xrv") / "pkg"
    import_model("densenet121-res224-all", out, untrained=True)
    return out


def test_export_matches_pytorch(exported):
    model = build_xrv_model("densenet121-res224-all", untrained=True)  # same seed as export
    x = np.random.default_rng(0).uniform(-1024, 1024, (2, 1, 224, 224)).astype(np.float32)
    with torch.no_grad():
        ref = model(torch.from_numpy(x)).numpy()  # xrv's own forward: logits
    import onnxruntime as ort

    sess = ort.InferenceSession(str(exported / "model.onnx"), providers=["CPUExecutionProvider"])
    logits, cam = sess.run(None, {"image": x})
    np.testing.assert_allclose(logits, ref, rtol=1e-3, atol=1e-4 * float(np.abs(ref).max()))
    assert cam.shape == (2, 18, 224, 224)
    assert cam.min() >= 0 and cam.max() <= 1.0


def test_exported_package_loads_and_runs(exported):
    registry = ModelRegistry.load(
        [exported], include_bundled=False, options=RuntimeOptions(intra_op_threads=1)
    )
    try:
        assert not registry.errors, registry.errors
        (model,) = registry.models.values()
        assert model.identity.demo and "UNTRAINED" in model.identity.intended_use
        (res,) = model.infer(make_dx(rows=128, cols=128))
        labels = {x.name: x for x in res.labels}
        assert labels["Effusion"].code.value == "60046008"
        assert labels["Effusion"].heatmap.shape == (224, 224)
    finally:
        registry.close()


def test_cli_import_untrained(tmp_path):
    from typer.testing import CliRunner

    from dicom_node.cli import app

    out = tmp_path / "cli-pkg"
    result = CliRunner().invoke(
        app,
        [
            "models",
            "import-torchxrayvision",
            "densenet121-res224-all",
            "--out",
            str(out),
            "--untrained",
        ],
    )
    assert result.exit_code == 0, result.output
    assert (out / "model.onnx").is_file() and (out / "model.yaml").is_file()
    assert "package written" in result.output
