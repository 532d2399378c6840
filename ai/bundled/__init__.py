"""The bundled, non-clinical demo chest X-ray model (built from code, no downloads)."""

from ai.bundled.cache import DEMO_NAME, DEMO_VERSION, ensure_demo_package

__all__ = ["DEMO_NAME", "DEMO_VERSION", "ensure_demo_package"]
