"""``SegmentationDataset``: cases on disk -> model-ready tensors, 2D or 3D."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from kanseg.atomic import atomic_path
from kanseg.data.cases import Case
from kanseg.data.io import is_nifti, nifti_geometry, open_nifti, read_image, read_label_values, read_mask
from kanseg.data.labels import class_names, is_multiclass, to_class_indices
from kanseg.data.spatial import affine_of, has_geometry, resample_to_grid, resize_probabilities
from kanseg.data.transforms import dataset_pipelines, run_pipeline


class SegmentationDataset(torch.utils.data.Dataset):
    """Segmentation cases (binary or multi-class) with a fixed preprocessing.

    ``dataset[i]`` is ``{"image": float32 (C, *spatial), "label": float32 (1, *spatial), "id": str}``;
    the label holds {0, 1} for binary datasets and class indices ``0..num_classes-1`` for multi-class
    ones (``preprocessing["classes"]``, mapped from ``preprocessing["label_values"]``). Items are
    resized to ``preprocessing["image_size"]`` when set (2D datasets), reoriented and resampled to
    ``preprocessing["spacing"]`` (3D datasets), random patches of ``patch_size`` when given
    (training), whole images / volumes otherwise. :meth:`to_native` maps model-grid
    probabilities back onto a case's own grid.

    Random augmentation is reproducible: item ``i`` of epoch ``e`` is seeded from ``(seed, e, i)``
    after :meth:`set_epoch` (call it each epoch, like ``DistributedSampler.set_epoch``); without
    it, each item draws its seed from torch's global RNG (reproducible under
    ``torch.manual_seed`` and the DataLoader's per-worker seeding).

    ``cache_dir``: folder of resized arrays written by ``kanseg data prepare`` (used when present
    and up to date; see :meth:`write_cache`).
    """

    def __init__(
        self,
        cases: Sequence[Case],
        preprocessing: dict,
        *,
        mask_threshold: float = 0,
        augment: bool = False,
        seed: int = 0,
        patch_size: Sequence[int] | None = None,
        cache_dir: str | os.PathLike | None = None,
        elastic: bool = False,
        max_volume_mb: float | None = None,
    ) -> None:
        self.cases = list(cases)
        self.ids = [c.id for c in self.cases]
        self.preprocessing = json.loads(json.dumps(preprocessing))  # own, JSON-clean copy
        self.spatial_dims = int(preprocessing["spatial_dims"])
        self.in_channels = int(preprocessing["in_channels"])
        self.mask_threshold = mask_threshold
        self.seed = seed
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self._randomised = bool(augment or patch_size)
        self._epoch: int | None = None
        self._grid_affines: dict[int, np.ndarray] = {}  # model-grid affine of each 3D case loaded so far
        self._load, self._finish = dataset_pipelines(
            self.preprocessing, mask_threshold=mask_threshold, augment=augment, patch_size=patch_size,
            elastic=elastic, max_volume_mb=max_volume_mb,
        )

    @property
    def num_classes(self) -> int:
        """Number of classes including background (2 for binary datasets)."""
        return len(self.class_names)

    @property
    def class_names(self) -> list[str]:
        """Class names in label order, background first (``["background", "foreground"]`` when binary)."""
        return class_names(self.preprocessing)

    def __len__(self) -> int:
        return len(self.cases)

    def set_epoch(self, epoch: int) -> None:
        self._epoch = int(epoch)

    def _item_seed(self, index: int) -> int:
        if self._epoch is None:
            return int(torch.randint(0, 2**31 - 1, (1,)).item())
        return int(np.random.SeedSequence([self.seed, self._epoch, index]).generate_state(1)[0])

    def _cache_file(self, index: int) -> Path | None:
        if self.cache_dir is None:
            return None
        return self.cache_dir / f"{self.ids[index].replace(os.sep, '_')}.npz"

    def _source_mtime(self, index: int) -> float:
        case = self.cases[index]
        return max(p.stat().st_mtime for p in (*case.image, *case.label))

    def load_resized(self, index: int) -> dict:
        """Deterministic stage: ``image`` float32 (C, *spatial) after resize, ``label`` (1, *spatial)."""
        cache = self._cache_file(index)
        if cache is not None and cache.is_file():
            with np.load(cache) as stored:
                if float(stored["source_mtime"]) == self._source_mtime(index):
                    if "affine" in stored.files:
                        self._grid_affines[index] = stored["affine"]
                    return {"image": stored["image"].astype(np.float32), "label": stored["label"].astype(np.float32)}
        case = self.cases[index]
        data = run_pipeline(self._load, {"image": case.image, "label": case.label})
        if hasattr(data["image"], "affine"):
            self._grid_affines[index] = affine_of(data["image"])
        return {"image": np.asarray(data["image"], dtype=np.float32),
                "label": np.asarray(data["label"], dtype=np.float32)}

    def write_cache(self, index: int) -> Path:
        """Store the resized arrays of item ``index`` in ``cache_dir`` (atomic; 8-bit when lossless enough)."""
        assert self.cache_dir is not None, "dataset has no cache_dir"
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        data = self.load_resized(index)
        image = data["image"]
        intensity = self.preprocessing["intensity"]
        if intensity.get("kind") == "range" and intensity.get("a_min") == 0 and intensity.get("a_max") == 255:
            image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
        path = self._cache_file(index)
        extra = {"affine": self._grid_affines[index]} if index in self._grid_affines else {}
        with atomic_path(path, ".npz") as tmp:
            np.savez(tmp, image=image, label=data["label"].astype(np.uint8), source_mtime=self._source_mtime(index),
                     **extra)
        return path

    def __getitem__(self, index: int) -> dict:
        data = self.load_resized(index)
        if self._randomised:
            self._finish.set_random_state(seed=self._item_seed(index))
        out = run_pipeline(self._finish, data)
        if isinstance(out, list):  # patch samplers return a list of samples
            out = out[0]
        return {"image": out["image"], "label": out["label"], "id": self.ids[index]}

    def native_label(self, index: int) -> np.ndarray:
        """Ground truth on the case's own grid: bool ``(*native_spatial)`` (binary) or uint8 class
        indices (multi-class)."""
        labels = list(self.cases[index].label)
        if is_multiclass(self.preprocessing):
            return to_class_indices(read_label_values(labels), self.preprocessing["label_values"], labels[0])
        return read_mask(labels, self.mask_threshold)

    def native_grid(self, index: int) -> tuple[tuple[int, ...], np.ndarray | None]:
        """``(spatial shape, affine)`` of the case as stored (affine None for 2D images)."""
        path = self.cases[index].image[0]
        if is_nifti(path):
            shape, affine, _ = nifti_geometry(path)
            return shape[:3], affine
        return tuple(read_image(path).shape[:2]), None

    def to_native(self, index: int, prob: torch.Tensor) -> torch.Tensor:
        """Probabilities ``(C, *model_grid)`` of whole item ``index`` -> ``(C, *native_spatial)``.

        3D: an affine resample from the reoriented, resampled grid back onto the file's own voxel
        grid; 2D (and 3D without a geometry): linear resize to the native size.
        """
        shape, affine = self.native_grid(index)
        if has_geometry(self.preprocessing) and affine is not None:
            if index not in self._grid_affines:
                self.load_resized(index)
            return resample_to_grid(prob, self._grid_affines[index], affine, shape)
        return resize_probabilities(prob.float(), shape)

    def native_image(self, index: int) -> np.ndarray:
        """Image as stored, channel-last ``(*native_spatial, C)`` (RGB uint8 for photos), for overlays."""
        return np.concatenate([read_image(p) for p in self.cases[index].image], axis=-1)

    def spacing(self, index: int) -> tuple[float, ...] | None:
        """Voxel size in mm of a NIfTI case (from its header), ``None`` for 2D images."""
        path = self.cases[index].image[0]
        if not is_nifti(path):
            return None
        return tuple(float(z) for z in open_nifti(path)[0].header.get_zooms()[:3])
