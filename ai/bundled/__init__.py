"""The bundled, non-clinical demo chest X-ray model (built from code, no downloads)."""

from ai.bundled.demo_cxr import DEMO_NAME, DEMO_VERSION, build_demo_onnx, ensure_demo_package

__all__ = ["DEMO_NAME", "DEMO_VERSION", "build_demo_onnx", "ensure_demo_package"]
