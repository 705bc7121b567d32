"""Prediction on new scans: :class:`Predictor` (one model, one image at a time) and :func:`predict`.

Pipeline for one file: read (native array) -> the dataset's own preprocessing (from the checkpoint)
-> sliding-window probabilities (+ flip TTA) -> back to the native grid -> threshold / argmax ->
write the mask (+ probabilities, overlay). The checkpoint alone defines model and preprocessing.

3D checkpoints with a geometry (``orientation`` + ``spacing``) need the scan's affine: the volume is
reoriented and resampled exactly as in training, and the probabilities are resampled back onto the
scan's own voxel grid (:meth:`Predictor.predict_volume`), so masks keep the input's shape and affine.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from kanseg.data.spatial import resize_probabilities  # noqa: F401  (part of this module's API)
from kanseg.device import resolve_device
from kanseg.errors import KansegError
from kanseg.inference.sliding_window import (
    BLEND_MODES, DEFAULT_BLEND, DEFAULT_OVERLAP, DEFAULT_SW_BATCH_SIZE, WindowPredictor, sliding_window_probabilities,
)

# Window for 3D checkpoints that store neither a patch size nor an image size.
DEFAULT_ROI_3D = 128


def preprocess(native: np.ndarray, preprocessing: dict[str, Any]) -> torch.Tensor:
    """Native ``(*spatial, C)`` array -> model input ``(C, *spatial')`` float32, exactly as in training
    (3D: on the array's own grid; use :func:`preprocess_volume` to reorient and resample)."""
    from kanseg.data import preprocess_image

    return torch.as_tensor(preprocess_image(native, preprocessing), dtype=torch.float32)


def preprocess_volume(native: np.ndarray, affine: np.ndarray, preprocessing: dict[str, Any]
                      ) -> tuple[torch.Tensor, np.ndarray]:
    """Native ``(X, Y, Z, C)`` volume + affine -> (model input ``(C, *grid)``, the grid's affine)."""
    from kanseg.data.transforms import preprocess_volume as _preprocess_volume

    image, grid_affine = _preprocess_volume(native, affine, preprocessing)
    return torch.as_tensor(image, dtype=torch.float32), grid_affine


def probabilities_to_mask(prob: torch.Tensor, threshold: float = 0.5) -> np.ndarray:
    """(C, *spatial) probabilities -> uint8 (*spatial): ``p >= threshold`` for one channel, argmax otherwise."""
    if prob.shape[0] == 1:
        return (prob[0] >= threshold).to(torch.uint8).numpy()
    return prob.argmax(dim=0).to(torch.uint8).numpy()


def foreground_probability(prob: torch.Tensor) -> torch.Tensor:
    """(C, *spatial) -> (*spatial): the foreground channel, or 1 - background for several classes."""
    return prob[0] if prob.shape[0] == 1 else 1.0 - prob[0]


def training_patch_size(ckpt: dict[str, Any]) -> list[int] | None:
    """The patch size a checkpoint was trained on (3D), wherever the trainer stored it, else None."""
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    data = config.get("data") if isinstance(config.get("data"), dict) else {}
    for candidate in (ckpt.get("patch_size"), (ckpt.get("preprocessing") or {}).get("patch_size"),
                      data.get("patch_size")):
        if candidate:
            return [int(s) for s in candidate]
    return None


class Predictor:
    """A model plus its preprocessing, predicting one native image or volume at a time.

    Args:
        model: maps (B, in_channels, *spatial) -> logits (B, C_out, *spatial).
        preprocessing: the dataset's preprocessing dict (``spatial_dims``, ``in_channels``, ``intensity``...).
        roi_size: sliding-window size (int or one per spatial dim); default: the training patch size
            (checkpoint), else the image size, else the whole image (2D) or ``DEFAULT_ROI_3D`` (3D).
        overlap, sw_batch_size, blend: see :func:`sliding_window_probabilities`.
        tta: average over all flips of the spatial axes.
        threshold: foreground probability threshold for one-channel models.
        device: ``"auto"``, ``"cpu"``, ``"cuda"``...
        max_volume_mb: 3D volumes whose float32 input after resampling is larger are refused (one line).
    """

    def __init__(
        self,
        model: nn.Module,
        preprocessing: dict[str, Any],
        *,
        roi_size: int | Sequence[int] | None = None,
        overlap: float = DEFAULT_OVERLAP,
        sw_batch_size: int = DEFAULT_SW_BATCH_SIZE,
        blend: str = DEFAULT_BLEND,
        tta: bool = False,
        threshold: float = 0.5,
        device: str | torch.device = "auto",
        max_volume_mb: float | None = 2048.0,
    ):
        self.preprocessing = dict(preprocessing)
        missing = [k for k in ("spatial_dims", "in_channels", "intensity") if self.preprocessing.get(k) is None]
        if missing:
            raise KansegError(f"checkpoint preprocessing lacks {', '.join(missing)}: not a checkpoint of a kanseg dataset")
        self.spatial_dims = int(self.preprocessing["spatial_dims"])
        self.in_channels = int(self.preprocessing["in_channels"])
        if self.spatial_dims not in (2, 3):
            raise KansegError(f"checkpoint has spatial_dims={self.spatial_dims}; prediction supports 2 and 3")
        if not 0.0 <= overlap < 1.0:
            raise KansegError(f"overlap must be in [0, 1), got {overlap}")
        if sw_batch_size < 1:
            raise KansegError(f"sw_batch_size must be >= 1, got {sw_batch_size}")
        if not 0.0 < threshold < 1.0:
            raise KansegError(f"threshold must be in (0, 1), got {threshold}")
        if blend not in BLEND_MODES:
            raise KansegError(f"unknown blend mode {blend!r}; valid: {', '.join(BLEND_MODES)}")
        self.roi_size = self._resolve_roi(roi_size)
        self.overlap, self.sw_batch_size, self.blend = overlap, sw_batch_size, blend
        self.tta, self.threshold = tta, threshold
        self.max_volume_mb = max_volume_mb
        self.device = resolve_device(device)
        self.window_predictor = WindowPredictor(model.eval(), self.spatial_dims, tta=tta).to(self.device)

    @classmethod
    def from_checkpoint(cls, checkpoint: str | os.PathLike, **options: Any) -> Predictor:
        """Build model and preprocessing from a checkpoint file (``weights_only`` load)."""
        from kanseg.checkpoint import build_model, load_checkpoint

        ckpt = load_checkpoint(checkpoint)
        preprocessing = dict(ckpt.get("preprocessing") or {})
        kwargs = ckpt["model"]["kwargs"]
        preprocessing.setdefault("spatial_dims", kwargs.get("spatial_dims", 2))
        preprocessing.setdefault("in_channels", kwargs.get("in_channels"))
        patch_size = training_patch_size(ckpt)
        if patch_size and options.get("roi_size") is None:
            options["roi_size"] = patch_size
        return cls(build_model(ckpt, checkpoint), preprocessing, **options)

    def _resolve_roi(self, roi_size: int | Sequence[int] | None) -> tuple[int, ...]:
        """Window size with one entry per spatial dim; ``-1`` entries mean "the image's size"."""
        if roi_size is None:
            roi_size = self.preprocessing.get("patch_size") or self.preprocessing.get("image_size")
            if roi_size is None:
                roi_size = -1 if self.spatial_dims == 2 else DEFAULT_ROI_3D
        roi = (int(roi_size),) * self.spatial_dims if np.isscalar(roi_size) else tuple(int(r) for r in roi_size)
        if len(roi) != self.spatial_dims or any(r == 0 or r < -1 for r in roi):
            raise KansegError(
                f"roi size {roi} does not fit a {self.spatial_dims}D model (need {self.spatial_dims} positive sizes)"
            )
        return roi

    def _roi_for(self, spatial: Sequence[int]) -> tuple[int, ...]:
        return tuple(s if r == -1 else r for r, s in zip(self.roi_size, spatial))

    def predict_tensor(self, image: torch.Tensor, progress: bool = False) -> torch.Tensor:
        """Preprocessed (C_in, *spatial) -> probabilities (C_out, *spatial) float32 on the CPU."""
        if image.ndim != self.spatial_dims + 1 or image.shape[0] != self.in_channels:
            raise KansegError(
                f"expected a ({self.in_channels}, {', '.join(['*'] * self.spatial_dims)}) image, "
                f"got shape {tuple(image.shape)}"
            )
        return sliding_window_probabilities(
            image.float(),
            self.window_predictor,
            self._roi_for(image.shape[1:]),
            overlap=self.overlap,
            sw_batch_size=self.sw_batch_size,
            blend=self.blend,
            sw_device=self.device,
            progress=progress,
        )

    def preprocess(self, native: np.ndarray) -> torch.Tensor:
        """Native (*spatial, C) array -> model input (C_in, *spatial') via the checkpoint's preprocessing."""
        return preprocess(native, self.preprocessing)

    def predict_volume(self, native: np.ndarray, affine: np.ndarray, progress: bool = False) -> torch.Tensor:
        """Native ``(X, Y, Z, C)`` volume with its 4x4 affine -> probabilities ``(C_out, X, Y, Z)`` on the
        volume's own voxel grid: reorientation and resampling of the preprocessing are undone by an
        affine resample of the probabilities (linear), before any threshold or argmax."""
        from kanseg.data.spatial import has_geometry, resample_to_grid

        if self.spatial_dims != 3:
            raise KansegError("predict_volume needs a 3D checkpoint")
        spatial = tuple(native.shape[:3])
        if not has_geometry(self.preprocessing):  # checkpoints without a geometry: the file's own grid
            return resize_probabilities(self.predict_tensor(self.preprocess(native), progress=progress), spatial)
        from kanseg.data.volumes import check_volume_size

        zooms = np.sqrt((np.asarray(affine, dtype=np.float64)[:3, :3] ** 2).sum(axis=0))
        check_volume_size("input volume", spatial, affine, zooms, self.in_channels, self.preprocessing["spacing"],
                          self.max_volume_mb, option="the predictor's max_volume_mb")
        image, grid_affine = preprocess_volume(native, affine, self.preprocessing)
        prob = self.predict_tensor(image, progress=progress)
        del image
        return resample_to_grid(prob, grid_affine, np.asarray(affine, dtype=np.float64), spatial)

    def predict_array(self, native: np.ndarray, progress: bool = False, affine: np.ndarray | None = None
                      ) -> torch.Tensor:
        """Native (*spatial, C) array -> probabilities (C_out, *spatial) at the native resolution.

        For 3D volumes pass the ``affine`` (see :meth:`predict_volume`); without it the volume is taken
        to be on the training grid already (no reorientation or resampling).
        """
        if affine is not None and self.spatial_dims == 3:
            return self.predict_volume(native, affine, progress=progress)
        prob = self.predict_tensor(self.preprocess(native), progress=progress)
        return resize_probabilities(prob, native.shape[: self.spatial_dims])

    def predict_mask(self, native: np.ndarray, affine: np.ndarray | None = None) -> np.ndarray:
        """Native (*spatial, C) array -> uint8 mask (*spatial): {0, 1}, or class indices for several classes."""
        return probabilities_to_mask(self.predict_array(native, affine=affine), self.threshold)
