"""A loaded model: filters, preprocessing, the dynamic batcher and typed results."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
from pydicom.dataset import Dataset

from ai.batcher import DynamicBatcher
from ai.decode import iter_frames
from ai.manifest import Manifest
from ai.package import Package
from ai.preprocess import SUPPORTED_PHOTOMETRIC, Letterbox, crop_heatmap, preprocess_frame
from ai.session import RuntimeOptions
from ai.types import Code, ImageResult, LabelResult, ModelIdentity

log = logging.getLogger(__name__)

# Modalities of objects that carry pixel data but are not images of the patient.
NOT_IMAGES = frozenset(
    {
        "SEG",
        "SR",
        "DOC",
        "KO",
        "PR",
        "PLAN",
        "RWV",
        "REG",
        "FID",
        "RTDOSE",
        "RTPLAN",
        "RTRECORD",
        "RTSTRUCT",
    }
)


def activate(scores: np.ndarray, activation: str) -> np.ndarray:
    """Apply sigmoid / softmax / identity to one image's scores (float64 for stability)."""
    s = scores.astype(np.float64)
    if activation == "sigmoid":
        return 1.0 / (1.0 + np.exp(-s))
    if activation == "softmax":
        e = np.exp(s - s.max())
        return e / e.sum()
    return s


def identity_of(manifest: Manifest) -> ModelIdentity:
    """Return the :class:`ai.types.ModelIdentity` a manifest describes."""
    return ModelIdentity(
        name=manifest.name,
        version=manifest.version,
        manufacturer=manifest.manufacturer,
        device_uid=manifest.device_uid,
        intended_use=manifest.intended_use,
        demo=manifest.demo,
    )


def _matches(value: str, allowed: Sequence[str]) -> bool:
    return not allowed or value.strip().upper() in {a.strip().upper() for a in allowed}


class Model:
    """A model ready to run: header filter, preprocessing, dynamic batcher, typed results.

    ``infer`` is blocking and thread-safe.

    Parameters
    ----------
    package : ai.package.Package
        A loaded and validated package (manifest and open session).
    options : RuntimeOptions
        Batching and warm-up.

    Attributes
    ----------
    manifest : ai.manifest.Manifest
        The package's manifest.
    identity : ai.types.ModelIdentity
        Who the results say produced them.
    provider : str
        The ONNX Runtime execution provider the session runs on.
    """

    def __init__(self, package: Package, options: RuntimeOptions) -> None:
        self.package = package
        self.manifest = package.manifest
        self.identity = identity_of(self.manifest)
        self._session = package.session
        self.provider = self._session.provider
        out = self.manifest.output
        self._output_names = [out.scores] + ([out.heatmap] if out.heatmap else [])
        if options.warmup:  # before the batcher starts, so a failing model leaks no thread
            inp = self.manifest.input
            shape = (
                (1, inp.channels, inp.height, inp.width)
                if inp.layout == "NCHW"
                else (1, inp.height, inp.width, inp.channels)
            )
            self._session.warm_up({inp.name: np.zeros(shape, np.float32)}, self._output_names)
        max_batch = options.max_batch_size or self.manifest.runtime.max_batch_size
        self.batcher = DynamicBatcher(
            self._run_batch, max_batch, options.max_wait_ms, name=self.manifest.name
        )

    @property
    def name(self) -> str:
        """The manifest name, by which jobs and routes call the model."""
        return self.manifest.name

    def _run_batch(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run({self.manifest.input.name: batch}, self._output_names)

    def applies_to(self, ds: Dataset) -> tuple[bool, str]:
        """Whether this model takes ``ds``, checked on its header before any decoding.

        Besides the manifest's filters (an empty list accepts anything), objects that
        are not images of the patient (segmentations, dose grids, reports...) and
        photometric interpretations the runtime cannot turn into a tensor are refused.

        Parameters
        ----------
        ds : pydicom.dataset.Dataset
            The candidate image (its pixel data is not read).

        Returns
        -------
        tuple of (bool, str)
            ``(True, "")``, or ``(False, reason)`` naming the attribute refused.
        """
        modality = str(ds.get("Modality", "") or "").strip().upper()
        if modality in NOT_IMAGES:
            return False, f"Modality {modality!r} is not an image a model analyses"
        photometric = str(ds.get("PhotometricInterpretation", "") or "").strip()
        if photometric and photometric not in SUPPORTED_PHOTOMETRIC:
            return False, (
                f"PhotometricInterpretation {photometric!r} cannot be "
                f"preprocessed (supported: {list(SUPPORTED_PHOTOMETRIC)})"
            )
        a = self.manifest.applies_to
        checks = (
            ("Modality", a.modalities),
            ("BodyPartExamined", a.body_parts),
            ("ViewPosition", a.view_positions),
            ("PhotometricInterpretation", a.photometric_interpretations),
        )
        for keyword, allowed in checks:
            if not allowed:
                continue
            value = str(ds.get(keyword, "") or "")
            if not value:
                return False, f"{keyword} is missing; {self.name} needs one of {list(allowed)}"
            if not _matches(value, allowed):
                return False, f"{keyword} {value!r} not in {list(allowed)} for {self.name}"
        return True, ""

    def _label_results(
        self, scores: np.ndarray, cam: np.ndarray | None, box: Letterbox
    ) -> tuple[LabelResult, ...]:
        out = self.manifest.output
        probs = activate(scores, out.activation)
        inp = self.manifest.input
        labels = []
        for i, spec in enumerate(out.labels):
            p = float(np.clip(probs[i], 0.0, 1.0))
            heat = crop_heatmap(cam[i], box, inp.height, inp.width) if cam is not None else None
            code = Code(spec.code.value, spec.code.scheme, spec.code.meaning) if spec.code else None
            labels.append(
                LabelResult(
                    name=spec.name,
                    code=code,
                    probability=p,
                    threshold=spec.threshold,
                    positive=p >= spec.threshold,
                    heatmap=heat,
                )
            )
        return tuple(labels)

    def infer_array(self, tensor: np.ndarray) -> tuple[np.ndarray, ...]:
        """Run one preprocessed tensor through the batcher.

        Parameters
        ----------
        tensor : numpy.ndarray
            The model's input for one image, without the batch axis.

        Returns
        -------
        tuple of numpy.ndarray
            The model's outputs for that image (scores, then the heatmap if any).
        """
        return self.batcher.infer(tensor)

    def infer(self, ds: Dataset) -> list[ImageResult]:
        """Run the model on every frame of ``ds`` (frames are batched together).

        Blocking and thread-safe.

        Parameters
        ----------
        ds : pydicom.dataset.Dataset
            An image the model applies to (see :meth:`applies_to`), with pixel data.

        Returns
        -------
        list of ImageResult
            One per frame, in frame order.

        Raises
        ------
        DecodeError, PreprocessError
            The pixel data cannot be decoded or turned into the model's input (both
            are :class:`ValueError`: the same image fails the same way again).
        """
        sop = str(ds.get("SOPInstanceUID", ""))
        prepared = []
        for frame, stored in iter_frames(ds):
            prepared.append(
                (frame, preprocess_frame(stored, ds, self.manifest.preprocess, self.manifest.input))
            )
        futures = [(frame, p.box, self.batcher.submit(p.tensor)) for frame, p in prepared]
        results = []
        for frame, box, fut in futures:
            outs = fut.result()
            cam = outs[1] if len(outs) > 1 else None
            results.append(
                ImageResult(
                    sop_instance_uid=sop,
                    frame=frame,
                    model=self.identity,
                    labels=self._label_results(outs[0], cam, box),
                )
            )
        log.info(
            "model %s inferred %s (%d frame(s)) on %s", self.name, sop, len(results), self.provider
        )
        return results

    def close(self) -> None:
        """Stop the batcher."""
        self.batcher.close()
