"""MONAI dictionary pipelines shared by training, evaluation and inference.

One ``preprocessing`` dict (JSON-serialisable, stored in checkpoints) fully determines the
deterministic part of the pipeline::

    {"spatial_dims": 2, "in_channels": 3, "image_size": [256, 256] | None,
     "intensity": {"kind": "range", "a_min": 0, "a_max": 255, "mean": [...], "std": [...]}
               | {"kind": "zscore"}
               | {"kind": "ct", "clip": [[lo, hi], ...], "mean": [...], "std": [...]},
     # 3D NIfTI datasets (see kanseg.data.spatial, kanseg.data.fingerprint):
     "orientation": "RAS", "spacing": [sx, sy, sz], "fingerprint": {...},
     # multi-class datasets (labels become class indices 0..K-1):
     "classes": ["background", "anterior", "posterior"], "label_values": [0, 1, 2]}

2D order: load (cv2) -> resize (if ``image_size``) -> intensity to [0, 1] (``range``) -> random
augmentation (train only) -> mean/std or z-score normalisation -> float32 tensors.
3D order (nnU-Net): load (nibabel, checked) -> orientation -> spacing -> z-score / CT
normalisation of the whole volume -> pad + patch by label class (train) -> augmentation (train:
affine, optional elastic, gamma, noise, flips) -> float32 tensors.
Randomness lives only in Randomizable transforms, re-seeded per item by the dataset, so a run
is reproducible regardless of the number of DataLoader workers.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")

import albumentations as A  # noqa: E402
import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from monai.transforms import (  # noqa: E402
    Compose,
    EnsureTyped,
    MapTransform,
    NormalizeIntensityd,
    Rand3DElasticd,
    RandAdjustContrastd,
    RandAffined,
    RandCropByLabelClassesd,
    RandCropByPosNegLabeld,
    RandFlipd,
    RandGaussianNoised,
    Randomizable,
    Resized,
    ScaleIntensityRanged,
    SpatialPadd,
)

from kanseg.data.io import is_nifti, read_image, read_label_values, read_mask  # noqa: E402
from kanseg.data.labels import is_multiclass, to_class_indices  # noqa: E402
from kanseg.data.spatial import affine_of, geometry_transforms, has_geometry, with_affine  # noqa: E402
from kanseg.data.volumes import read_case_3d  # noqa: E402
from kanseg.errors import KansegError  # noqa: E402

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
INTENSITY_KINDS = ("range", "zscore", "ct")
FOREGROUND_OVERSAMPLING = 1 / 3  # share of patches centred on a foreground class (nnU-Net: 0.33)


def rgb_intensity(in_channels: int, a_max: float = 255.0) -> dict[str, Any]:
    """8-bit photos: scale to [0, 1], then ImageNet mean/std (what U-KAN's ``Normalize()`` does)."""
    mean = list(IMAGENET_MEAN) if in_channels == 3 else [float(np.mean(IMAGENET_MEAN))] * in_channels
    std = list(IMAGENET_STD) if in_channels == 3 else [float(np.mean(IMAGENET_STD))] * in_channels
    return {"kind": "range", "a_min": 0.0, "a_max": float(a_max), "mean": mean, "std": std}


def adapt_channels(image: np.ndarray, in_channels: int) -> np.ndarray:
    """Channel-last ``(*spatial, C)`` -> ``(*spatial, in_channels)``: grey<->RGB, alpha dropped."""
    channels = image.shape[-1]
    if channels == in_channels:
        return image
    if channels == 1:
        return np.repeat(image, in_channels, axis=-1)
    if in_channels == 1 and channels in (3, 4):
        weights = np.array([0.299, 0.587, 0.114], dtype=np.float32)
        return (image[..., :3].astype(np.float32) @ weights)[..., None]
    if in_channels == 3 and channels == 4:
        return image[..., :3]
    raise KansegError(f"image has {channels} channels, the model expects {in_channels}")


class LoadCased(MapTransform):
    """Load a case from paths: ``{"image": (path, ...), "label": (path, ...)}`` ->
    ``image`` float32 ``(C, *spatial)`` and ``label`` float32 ``(1, *spatial)``.

    Several image paths are channels (nnU-Net ``_0000``, ``_0001``); several 2D label paths are
    OR-merged (BUSI's extra masks). Binary labels are ``> mask_threshold``; with ``label_values``
    (multi-class) they are class indices. NIfTI cases come out as ``MetaTensor`` s with their affine
    (for orientation and spacing), after the checks of :func:`kanseg.data.volumes.read_case_3d`.
    """

    def __init__(self, in_channels: int, mask_threshold: float = 0, label_values=None, spacing=None,
                 max_volume_mb: float | None = None) -> None:
        super().__init__(keys=("image", "label"), allow_missing_keys=True)
        self.in_channels = in_channels
        self.mask_threshold = mask_threshold
        self.label_values = list(label_values) if label_values else None
        self.spacing, self.max_volume_mb = spacing, max_volume_mb

    def _load_3d(self, d: dict) -> dict:
        image, label, affine = read_case_3d(
            list(d["image"]), list(d.get("label") or ()), in_channels=self.in_channels,
            label_values=self.label_values, mask_threshold=self.mask_threshold, spacing=self.spacing,
            max_volume_mb=self.max_volume_mb)
        d["image"] = with_affine(image, affine)
        if label is None:
            d.pop("label", None)
        else:
            d["label"] = with_affine(label, affine)
        return d

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        image_paths = list(d["image"])
        if is_nifti(image_paths[0]):
            return self._load_3d(d)
        image = np.concatenate([read_image(p) for p in image_paths], axis=-1)
        image = adapt_channels(image, self.in_channels)
        d["image"] = np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)
        if d.get("label"):
            if self.label_values:
                mask = to_class_indices(read_label_values(list(d["label"])), self.label_values, d["label"][0])
            else:
                mask = read_mask(list(d["label"]), self.mask_threshold)
            if mask.shape != image.shape[:-1]:
                size = "x".join(map(str, mask.shape[::-1]))
                expected = "x".join(map(str, image.shape[-2::-1]))
                raise KansegError(f"mask {d['label'][0]} is {size} but image {image_paths[0]} is {expected}")
            d["label"] = mask[None].astype(np.float32)
        else:
            d.pop("label", None)
        return d


class ClipNormalized(MapTransform):
    """CT normalisation: clip each channel to ``clip[c]``, then ``(x - mean[c]) / std[c]``."""

    def __init__(self, keys, clip, mean, std) -> None:
        super().__init__(keys)
        self.low, self.high = (np.asarray([c[i] for c in clip], np.float32) for i in (0, 1))
        self.mean, self.std = np.asarray(mean, np.float32), np.asarray(std, np.float32)

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            image = np.asarray(d[key], dtype=np.float32)
            per_channel = (-1,) + (1,) * (image.ndim - 1)
            low, high, mean, std = (a.reshape(per_channel) for a in (self.low, self.high, self.mean, self.std))
            d[key] = ((np.clip(image, low, high) - mean) / std).astype(np.float32)
        return d


class Albumentations2Dd(MapTransform, Randomizable):
    """2D augmentation with albumentations on ``image`` (C, H, W) in [0, 1] and ``label`` (1, H, W).

    Flips, rot90 (square images only, so batch shapes never change), a mild affine and
    brightness/contrast. Seeded through MONAI's ``set_random_state``.
    """

    def __init__(self, square: bool = True) -> None:
        MapTransform.__init__(self, keys=("image", "label"), allow_missing_keys=True)
        geometric = [A.HorizontalFlip(p=0.5), A.VerticalFlip(p=0.5)]
        if square:
            geometric.insert(0, A.RandomRotate90(p=0.5))
        self.compose = A.Compose(
            [
                *geometric,
                A.Affine(scale=(0.9, 1.1), translate_percent=(-0.05, 0.05), rotate=(-15, 15),
                         border_mode=cv2.BORDER_CONSTANT, p=0.3),
                A.RandomBrightnessContrast(brightness_limit=0.1, contrast_limit=0.1, p=0.3),
            ],
            seed=0,
        )

    def set_random_state(self, seed: int | None = None, state: np.random.RandomState | None = None):
        super().set_random_state(seed=seed, state=state)
        self.compose.set_random_seed(int(self.R.randint(2**31 - 1)))
        return self

    def randomize(self, data: Any = None) -> None:  # albumentations draws its own parameters
        pass

    def __call__(self, data: dict) -> dict:
        d = dict(data)
        image = np.ascontiguousarray(np.moveaxis(np.asarray(d["image"], dtype=np.float32), 0, -1))
        kwargs = {"image": image}
        if "label" in d:
            kwargs["mask"] = np.ascontiguousarray(np.asarray(d["label"][0], dtype=np.uint8))
        out = self.compose(**kwargs)
        d["image"] = np.ascontiguousarray(np.moveaxis(out["image"], -1, 0), dtype=np.float32)
        if "label" in d:
            d["label"] = out["mask"][None].astype(np.float32)
        return d


def run_pipeline(pipeline: Compose, data: dict):
    """Apply a MONAI pipeline; a :class:`KansegError` inside it comes out as itself (MONAI wraps
    every exception in ``RuntimeError("applying transform ...")``)."""
    try:
        return pipeline(data)
    except RuntimeError as err:
        cause = err.__cause__
        while cause is not None and not isinstance(cause, KansegError):
            cause = cause.__cause__
        if cause is None:
            raise
        raise cause from None


def _check_intensity(intensity: dict) -> None:
    if intensity.get("kind") not in INTENSITY_KINDS:
        raise KansegError(f"unknown intensity kind {intensity.get('kind')!r}; valid: {', '.join(INTENSITY_KINDS)}")


def resize_transforms(preprocessing: dict, keys: Sequence[str]) -> list:
    """``Resized`` to ``image_size`` (bilinear image, nearest label), or nothing when it is None."""
    size = preprocessing.get("image_size")
    if not size:
        return []
    modes = tuple("nearest" if k == "label" else "bilinear" for k in keys)
    return [Resized(keys=list(keys), spatial_size=tuple(size), mode=modes)]


def normalization_transforms(intensity: dict) -> list:
    """The normalisation step alone (z-score or CT), for 3D volumes before patches are cut."""
    if intensity["kind"] == "ct":
        return [ClipNormalized(keys="image", clip=intensity["clip"], mean=intensity["mean"], std=intensity["std"])]
    return [NormalizeIntensityd(keys="image", channel_wise=True)]


def intensity_transforms(preprocessing: dict, augment: list | None = None) -> list:
    """Intensity scaling around the (optional) augmentation transforms, then tensors.

    Volumes with a geometry (3D) are normalised whole, before the random steps (nnU-Net's order).
    """
    intensity = preprocessing["intensity"]
    _check_intensity(intensity)
    augment = list(augment or [])
    if has_geometry(preprocessing) or intensity["kind"] == "ct":
        steps = normalization_transforms(intensity) + augment
    elif intensity["kind"] == "zscore":
        steps = augment + [NormalizeIntensityd(keys="image", channel_wise=True)]
    else:
        steps = [ScaleIntensityRanged(keys="image", a_min=intensity["a_min"], a_max=intensity["a_max"],
                                      b_min=0.0, b_max=1.0, clip=True)] + augment
        if intensity.get("mean") is not None:
            steps.append(NormalizeIntensityd(keys="image", subtrahend=intensity["mean"],
                                             divisor=intensity["std"], channel_wise=True))
    keys = ("image", "label")
    return steps + [EnsureTyped(keys=keys, data_type="tensor", dtype=torch.float32, track_meta=False,
                                allow_missing_keys=True)]


def augmentation_3d(elastic: bool = False) -> list:
    """nnU-Net-like 3D augmentation from MONAI on a patch: affine (rotation +-30 deg, scale 0.85-1.25),
    optional elastic, gamma, Gaussian noise, flips on every axis."""
    keys, modes = ["image", "label"], ("bilinear", "nearest")
    steps = [RandAffined(keys=keys, prob=0.2, rotate_range=[np.pi / 6] * 3, scale_range=[(-0.15, 0.25)] * 3,
                         mode=modes, padding_mode="zeros")]
    if elastic:
        steps.append(Rand3DElasticd(keys=keys, sigma_range=(5, 8), magnitude_range=(50, 150), prob=0.2,
                                    mode=modes, padding_mode="zeros"))
    steps += [
        RandAdjustContrastd(keys="image", prob=0.3, gamma=(0.7, 1.5), retain_stats=True),
        RandGaussianNoised(keys="image", prob=0.1, std=0.1),
    ]
    return steps + [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]


def patch_sampler(preprocessing: dict, patch_size: Sequence[int]) -> list:
    """Pad to the patch, then a patch centred on background or (oversampled) a foreground class.

    Binary 2D datasets keep their positive/negative sampler; 3D and multi-class datasets use
    ``RandCropByLabelClassesd`` with ``FOREGROUND_OVERSAMPLING`` of patches spread over the classes.
    """
    keys, size = ["image", "label"], tuple(patch_size)
    steps: list = [SpatialPadd(keys=keys, spatial_size=size)]
    if preprocessing["spatial_dims"] == 2 and not is_multiclass(preprocessing):
        return steps + [RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=size, pos=1, neg=1,
                                               num_samples=1)]
    n_classes = max(2, len(preprocessing.get("classes") or ()))
    share = FOREGROUND_OVERSAMPLING / (n_classes - 1)
    ratios = [1 - FOREGROUND_OVERSAMPLING] + [share] * (n_classes - 1)
    return steps + [RandCropByLabelClassesd(keys=keys, label_key="label", spatial_size=size, ratios=ratios,
                                            num_classes=n_classes, num_samples=1, warn=False)]


def random_transforms(preprocessing: dict, *, augment: bool, patch_size: Sequence[int] | None = None,
                      elastic: bool = False) -> list:
    """Random transforms of the training subset: patch sampling (any dims), augmentation."""
    keys = ["image", "label"]
    steps: list = patch_sampler(preprocessing, patch_size) if patch_size else []
    if not augment:
        return steps
    if preprocessing["spatial_dims"] == 2:
        size = tuple(patch_size or preprocessing.get("image_size") or ())
        steps.append(Albumentations2Dd(square=len(size) == 2 and size[0] == size[1]))
    elif has_geometry(preprocessing):
        steps += augmentation_3d(elastic)
    else:
        steps += [RandFlipd(keys=keys, prob=0.5, spatial_axis=axis) for axis in range(3)]
    return steps


def dataset_pipelines(preprocessing: dict, *, mask_threshold: float, augment: bool,
                      patch_size: Sequence[int] | None, elastic: bool = False,
                      max_volume_mb: float | None = None) -> tuple[Compose, Compose]:
    """(load + geometry/resize, intensity [+ random]) pipelines of a dataset; the first is cacheable."""
    keys = ("image", "label")
    loader = LoadCased(preprocessing["in_channels"], mask_threshold, preprocessing.get("label_values")
                       if is_multiclass(preprocessing) else None, preprocessing.get("spacing"), max_volume_mb)
    load = Compose([loader, *geometry_transforms(preprocessing, keys), *resize_transforms(preprocessing, keys)])
    random = random_transforms(preprocessing, augment=augment, patch_size=patch_size, elastic=elastic)
    return load, Compose(intensity_transforms(preprocessing, random))


def preprocess_image(image: np.ndarray, preprocessing: dict) -> torch.Tensor:
    """A new image as loaded (channel-last ``(*spatial[, C])``, RGB) -> ``(C, *spatial)`` model input.

    Applies exactly the deterministic transforms of training: channel adaptation, resize to
    ``image_size`` (when set) and intensity normalisation.
    """
    spatial_dims = preprocessing["spatial_dims"]
    image = np.asarray(image)
    if image.ndim == spatial_dims:
        image = image[..., None]
    if image.ndim != spatial_dims + 1:
        raise KansegError(f"expected a {spatial_dims}D image (optionally with channels), got shape {image.shape}")
    image = adapt_channels(image, preprocessing["in_channels"])
    data = {"image": np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32)}
    pipeline = Compose([*resize_transforms(preprocessing, ("image",)), *intensity_transforms(preprocessing)])
    return run_pipeline(pipeline, data)["image"]


def preprocess_volume(image: np.ndarray, affine: np.ndarray, preprocessing: dict) -> tuple[torch.Tensor, np.ndarray]:
    """A new NIfTI volume ``(X, Y, Z[, C])`` + its affine -> ``(model input (C, *grid), grid affine)``.

    Exactly the deterministic transforms of training (orientation, spacing, normalisation); the
    grid affine is what :func:`kanseg.data.spatial.resample_to_grid` needs to go back.
    """
    image = np.asarray(image)
    image = image[..., None] if image.ndim == 3 else image
    if image.ndim != 4 or preprocessing["spatial_dims"] != 3:
        raise KansegError(f"expected a 3D volume (X, Y, Z[, C]) for a 3D model, got shape {image.shape}")
    image = adapt_channels(image, preprocessing["in_channels"])
    data = {"image": with_affine(np.ascontiguousarray(np.moveaxis(image, -1, 0), dtype=np.float32), affine)}
    data = run_pipeline(Compose(geometry_transforms(preprocessing, ("image",))), data)
    grid_affine = affine_of(data["image"]) if hasattr(data["image"], "affine") else np.asarray(affine, np.float64)
    data["image"] = np.asarray(data["image"], dtype=np.float32)
    return run_pipeline(Compose(intensity_transforms(preprocessing)), data)["image"], grid_affine
