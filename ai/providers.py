"""Execution-provider selection: TensorRT -> CUDA -> CPU among those installed and allowed."""

from __future__ import annotations

from collections.abc import Sequence

DEFAULT_ORDER: tuple[str, ...] = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CPUExecutionProvider",
)
ALIASES = {
    "tensorrt": "TensorrtExecutionProvider",
    "trt": "TensorrtExecutionProvider",
    "cuda": "CUDAExecutionProvider",
    "cpu": "CPUExecutionProvider",
}


def canonical(name: str) -> str:
    """Return the full ONNX Runtime name of an execution provider.

    Parameters
    ----------
    name : str
        An alias (``"cuda"``, ``"tensorrt"``, ``"cpu"``, any case) or a full name.

    Returns
    -------
    str
        E.g. ``"CUDAExecutionProvider"``; a full or unknown name passes through, stripped.
    """
    return ALIASES.get(name.strip().lower(), name.strip())


def select_providers(available: Sequence[str], preferred: Sequence[str] | None = None) -> list[str]:
    """Choose the providers to give ONNX Runtime, best first.

    ``preferred`` (config order, aliases allowed) defaults to TensorRT, CUDA, CPU. Only
    installed providers are kept; CPU is always appended last as the fallback when
    installed, so a session can always be created.
    """
    wanted = [canonical(p) for p in (preferred or DEFAULT_ORDER)]
    chosen: list[str] = []
    for name in wanted:
        if name in available and name not in chosen:
            chosen.append(name)
    if "CPUExecutionProvider" in available and "CPUExecutionProvider" not in chosen:
        chosen.append("CPUExecutionProvider")
    if not chosen:
        raise ValueError(f"none of the providers {wanted} is installed (have {list(available)})")
    return chosen
