"""The model registry: loads every package, keeps per-package errors, never raises for one."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ai.bundled import ensure_demo_package
from ai.manifest import MANIFEST_NAME, ManifestError
from ai.model import Model
from ai.package import load_package
from ai.session import RuntimeOptions

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackageError:
    """A package that could not be loaded.

    Attributes
    ----------
    path : pathlib.Path
        The package directory.
    message : str
        What is wrong, naming the file and the field.
    """

    path: Path
    message: str


def discover(models_dir: Path) -> list[Path]:
    """List the package directories directly under ``models_dir``.

    Parameters
    ----------
    models_dir : pathlib.Path
        A directory of model packages.

    Returns
    -------
    list of pathlib.Path
        The subdirectories holding a ``model.yaml``, sorted; empty if ``models_dir``
        is not a directory.
    """
    models_dir = Path(models_dir)
    if not models_dir.is_dir():
        return []
    return sorted(p for p in models_dir.iterdir() if (p / MANIFEST_NAME).is_file())


class ModelRegistry:
    """Loaded models by name plus the errors of packages that could not be loaded.

    Build one with :meth:`load`; close it (or use it as a context manager) to stop the
    models' batchers.

    Parameters
    ----------
    models : dict of str to Model
        The loaded models by manifest name.
    errors : list of PackageError
        The packages that could not be loaded.
    """

    def __init__(self, models: dict[str, Model], errors: list[PackageError]) -> None:
        self.models = models
        self.errors = errors

    @classmethod
    def load(
        cls,
        package_dirs: Iterable[Path | str] = (),
        cache_dir: Path | str | None = None,
        include_bundled: bool = True,
        options: RuntimeOptions | None = None,
        models_dir: Path | str | None = None,
    ) -> ModelRegistry:
        """Load the bundled demo, the packages named and those found under a directory.

        A package that cannot be loaded is reported in :attr:`errors`; the others load.

        Parameters
        ----------
        package_dirs : iterable of path-like
            Model package directories (``model.yaml`` and its ONNX file).
        cache_dir : path-like, optional
            Where the bundled demo is built on first use; required with
            ``include_bundled``.
        include_bundled : bool
            Load the bundled (non-clinical) demo model.
        options : RuntimeOptions, optional
            Sessions and batching; the defaults when ``None``.
        models_dir : path-like, optional
            A directory whose package subdirectories are all loaded.

        Returns
        -------
        ModelRegistry
            The loaded models by manifest name, and the errors.
        """
        options = options or RuntimeOptions()
        dirs: list[Path] = []
        errors: list[PackageError] = []
        if include_bundled:
            if cache_dir is None:
                errors.append(
                    PackageError(Path("<bundled>"), "bundled demo needs a cache directory")
                )
            else:
                try:
                    dirs.append(ensure_demo_package(Path(cache_dir)))
                except Exception as exc:  # noqa: BLE001 - reported, node keeps running
                    errors.append(PackageError(Path(cache_dir), f"bundled demo: {exc}"))
        if models_dir is not None:
            dirs.extend(discover(Path(models_dir)))
        dirs.extend(Path(p) for p in package_dirs)
        models: dict[str, Model] = {}
        seen: set[Path] = set()
        for d in dirs:
            key = d.resolve()
            if key in seen:
                continue
            seen.add(key)
            try:
                package = load_package(d, options)
                name = package.manifest.name
                if name in models:
                    raise ManifestError(
                        d / MANIFEST_NAME,
                        "name",
                        f"{name!r} already loaded from {models[name].package.path}",
                    )
                models[name] = Model(package, options)
                log.info(
                    "loaded model %s %s from %s on %s",
                    name,
                    package.manifest.version,
                    d,
                    models[name].provider,
                )
            except ManifestError as exc:
                log.error("model package refused: %s", exc)
                errors.append(PackageError(d, str(exc)))
            except Exception as exc:  # noqa: BLE001 - one broken package must not stop others
                log.error("model package %s failed: %s", d, exc)
                errors.append(PackageError(d, f"{d}: {exc}"))
        return cls(models, errors)

    def get(self, name: str) -> Model:
        """Return the model called ``name``.

        Parameters
        ----------
        name : str
            A manifest name.

        Returns
        -------
        Model

        Raises
        ------
        KeyError
            No such model; the message lists the loaded names.
        """
        try:
            return self.models[name]
        except KeyError:
            raise KeyError(f"no model {name!r}; loaded: {sorted(self.models)}") from None

    def close(self) -> None:
        """Stop every model's batcher."""
        for model in self.models.values():
            model.close()

    def __enter__(self) -> ModelRegistry:
        """Use the registry as a context manager that closes it."""
        return self

    def __exit__(self, *exc: object) -> None:
        """Close the registry."""
        self.close()
