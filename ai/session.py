"""ONNX Runtime session wrapper: providers, threads, warm-up, IO binding on CUDA."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime as ort

from ai.providers import select_providers

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RuntimeOptions:
    """How sessions and batchers run (the node's ``models:`` config maps onto this).

    Attributes
    ----------
    providers : tuple of str
        Execution providers in order of preference (aliases allowed); empty for
        TensorRT, CUDA, CPU among those installed.
    intra_op_threads, inter_op_threads : int
        ONNX Runtime thread pools; 0 for its default.
    max_batch_size : int or None
        Overrides the manifests' ``runtime.max_batch_size``.
    max_wait_ms : float
        How long a batch waits for more requests.
    warmup : bool
        Run each model once at load time.
    allow_spinning : bool
        Let ORT worker threads spin-wait between runs.
    cpu_memory_arena : bool
        ORT's CPU memory arena (faster, keeps the largest batch's memory).
    """

    providers: tuple[str, ...] = ()  # empty: TensorRT -> CUDA -> CPU
    intra_op_threads: int = 0  # 0: ONNX Runtime's default
    inter_op_threads: int = 0
    max_batch_size: int | None = None  # overrides the manifests' runtime.max_batch_size
    max_wait_ms: float = 5.0
    warmup: bool = True
    # ORT worker threads spin-wait between runs by default; that steals the CPU from the
    # batcher and preprocessing threads on small machines, so it is off unless asked for.
    allow_spinning: bool = False
    # ORT's CPU arena keeps the high-water mark of the largest batch (~190 MB more for
    # DenseNet-121 at batch 8) for ~10% speed; off by default so the node stays light.
    cpu_memory_arena: bool = False


class Session:
    """One ONNX Runtime InferenceSession; ``run`` is safe to call from several threads."""

    def __init__(self, onnx_path: Path, options: RuntimeOptions) -> None:
        so = ort.SessionOptions()
        if options.intra_op_threads:
            so.intra_op_num_threads = options.intra_op_threads
        if options.inter_op_threads:
            so.inter_op_num_threads = options.inter_op_threads
        so.add_session_config_entry(
            "session.intra_op.allow_spinning", "1" if options.allow_spinning else "0"
        )
        so.add_session_config_entry(
            "session.inter_op.allow_spinning", "1" if options.allow_spinning else "0"
        )
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.enable_cpu_mem_arena = options.cpu_memory_arena
        providers = select_providers(ort.get_available_providers(), options.providers or None)
        self._session = ort.InferenceSession(str(onnx_path), so, providers=providers)
        self.providers = list(self._session.get_providers())
        self.provider = self.providers[0]
        self.use_io_binding = self.provider in (
            "CUDAExecutionProvider",
            "TensorrtExecutionProvider",
        )
        log.info("model session %s on %s (requested %s)", onnx_path, self.provider, providers)

    @property
    def inputs(self) -> list[ort.NodeArg]:
        """The graph's inputs (onnxruntime NodeArgs)."""
        return list(self._session.get_inputs())

    @property
    def outputs(self) -> list[ort.NodeArg]:
        """The graph's outputs (onnxruntime NodeArgs)."""
        return list(self._session.get_outputs())

    def run(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> list[np.ndarray]:
        """Run one batch; on CUDA/TensorRT the inputs and outputs go through IO binding."""
        if not self.use_io_binding:
            return self._session.run(output_names, feeds)
        binding = self._session.io_binding()
        for name, array in feeds.items():
            value = ort.OrtValue.ortvalue_from_numpy(np.ascontiguousarray(array), "cuda", 0)
            binding.bind_ortvalue_input(name, value)
        for name in output_names:
            binding.bind_output(name, "cuda", 0)
        self._session.run_with_iobinding(binding)
        return list(binding.copy_outputs_to_cpu())

    def warm_up(self, feeds: dict[str, np.ndarray], output_names: list[str]) -> None:
        """One throw-away run so the first real request pays no allocation/compile cost."""
        self.run(feeds, output_names)
