"""Execution-provider selection logic (pure function; fake provider lists, no fake results)."""

from __future__ import annotations

import onnxruntime as ort
import pytest

from ai.providers import select_providers

TRT, CUDA, CPU = "TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"


def test_default_order_prefers_tensorrt_then_cuda():
    assert select_providers([CPU, CUDA, TRT]) == [TRT, CUDA, CPU]
    assert select_providers([CPU, CUDA]) == [CUDA, CPU]
    assert select_providers(["AzureExecutionProvider", CPU]) == [CPU]


def test_config_order_and_aliases():
    assert select_providers([CPU, CUDA, TRT], ["cuda", "cpu"]) == [CUDA, CPU]
    assert select_providers([CPU, CUDA, TRT], ["cpu"]) == [CPU]
    # asked for CUDA on a CPU-only install: fall back to CPU
    assert select_providers([CPU], ["cuda"]) == [CPU]


def test_nothing_usable_raises():
    with pytest.raises(ValueError, match="none of the providers"):
        select_providers(["AzureExecutionProvider"], ["cuda"])


def test_real_install_selects_something_ort_accepts():
    chosen = select_providers(ort.get_available_providers())
    assert chosen[-1] == CPU or chosen[0] in (TRT, CUDA)
