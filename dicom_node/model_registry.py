"""The node's model registry, built from the ``models:`` section of its configuration."""

from __future__ import annotations

from pathlib import Path

from ai.manifest import MANIFEST_NAME, Manifest, ManifestError, load_manifest
from ai.registry import ModelRegistry, PackageError, discover
from dicom_node import metrics
from dicom_node.settings.root import NodeConfig


def load_registry(config: NodeConfig, *, only: Path | None = None) -> ModelRegistry:
    """Every package the configuration names plus the bundled demo (cached under
    ``<data_dir>/models``); with ``only``, just the package in that directory."""
    settings = config.models
    if only is not None:
        registry = ModelRegistry.load(
            [only], include_bundled=False, options=settings.runtime_options()
        )
    else:
        models_dir = settings.resolved_models_dir(Path(config.data_dir))
        registry = ModelRegistry.load(
            package_dirs=settings.packages,
            cache_dir=models_dir,
            include_bundled=settings.bundled,
            options=settings.runtime_options(),
            models_dir=models_dir,
        )
    observe_batches(registry)
    return registry


def observe_batches(registry: ModelRegistry) -> None:
    """Count each model's batch sizes (``dicom_node_inference_batch_size``) through the
    hook its dynamic batcher exposes."""
    for name, model in registry.models.items():
        model.batcher.on_batch = metrics.BATCH_SIZE.labels(name).observe


def model_manifests(config: NodeConfig) -> tuple[dict[str, Manifest], list[PackageError]]:
    """Name -> manifest of every package the configuration would load, read from the
    ``model.yaml`` files only (no ONNX session, nothing built): for checking the names
    routes use and for routing without the models. Unreadable manifests are returned as
    errors. The bundled demo's manifest is built in (its Device UID is a placeholder
    unless the package is already cached)."""
    from ai.bundled.cache import DEMO_NAME, demo_manifest

    settings = config.models
    manifests: dict[str, Manifest] = {}
    errors: list[PackageError] = []
    if settings.bundled:
        manifests[DEMO_NAME] = demo_manifest("0")
    dirs = [
        *discover(settings.resolved_models_dir(Path(config.data_dir))),
        *(Path(p) for p in settings.packages),
    ]
    seen: set[Path] = set()
    for d in dirs:
        if d.resolve() in seen:
            continue
        seen.add(d.resolve())
        try:
            manifest = load_manifest(d / MANIFEST_NAME)
        except ManifestError as exc:
            errors.append(PackageError(d, str(exc)))
            continue
        if manifest.name == DEMO_NAME and settings.bundled:
            manifests[DEMO_NAME] = manifest  # the cached bundled package itself
        elif manifest.name in manifests:
            errors.append(
                PackageError(
                    d, f"{d / MANIFEST_NAME}: name {manifest.name!r} is used by another package too"
                )
            )
        else:
            manifests[manifest.name] = manifest
    return manifests, errors


def model_names(config: NodeConfig) -> list[str]:
    """The names routes may use: every package the configuration would load."""
    return list(model_manifests(config)[0])
