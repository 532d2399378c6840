"""``models:`` section: which model packages to load and how to run them."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ai.providers import canonical
from ai.session import RuntimeOptions


class ModelsSettings(BaseModel):
    """Model packages and runtime settings.

    ``packages``: package directories to load. ``models_dir``: every package directory
    under it is loaded too (default ``<data_dir>/models``, where the bundled demo is cached).
    ``bundled``: load the built-in non-clinical demo model. ``providers``: execution
    provider preference (``tensorrt``, ``cuda``, ``cpu`` or full ORT names); empty means
    TensorRT -> CUDA -> CPU, whichever is installed.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: list[Path] = Field(default_factory=list)
    models_dir: Path | None = None
    bundled: bool = True
    providers: list[str] = Field(default_factory=list)
    intra_op_threads: int = Field(default=0, ge=0)
    inter_op_threads: int = Field(default=0, ge=0)
    max_batch_size: int | None = Field(default=None, ge=1)
    max_wait_ms: float = Field(default=5.0, ge=0.0, le=10000.0)
    memory_arena: bool = Field(
        default=False,
        description="ONNX Runtime's CPU memory arena: ~10% faster CPU "
        "inference, but keeps the largest batch's memory for good.",
    )

    @field_validator("providers")
    @classmethod
    def _known_providers(cls, value: list[str]) -> list[str]:
        for name in value:
            if not canonical(name).endswith("ExecutionProvider"):
                raise ValueError(
                    f"unknown execution provider {name!r} "
                    "(use tensorrt, cuda, cpu or an ONNX Runtime provider name)"
                )
        return value

    def runtime_options(self) -> RuntimeOptions:
        """The ai runtime's options for this section."""
        return RuntimeOptions(
            providers=tuple(self.providers),
            intra_op_threads=self.intra_op_threads,
            inter_op_threads=self.inter_op_threads,
            max_batch_size=self.max_batch_size,
            max_wait_ms=self.max_wait_ms,
            cpu_memory_arena=self.memory_arena,
        )

    def resolved_models_dir(self, data_dir: Path) -> Path:
        """Where packages are discovered and the bundled demo is cached."""
        return Path(self.models_dir) if self.models_dir else Path(data_dir) / "models"
