"""Reading one 3D case with every check a training run needs, so bad input fails on one line.

Checks (each a :class:`~kanseg.errors.KansegError` naming the file): channel count against
``dataset.json``, label volume shape and affine against the image, label values against the label
map, and the size after resampling against the configured memory limit.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from kanseg.data.io import nifti_geometry, read_label_values, read_nifti
from kanseg.data.labels import to_class_indices
from kanseg.data.spatial import resampled_voxels
from kanseg.errors import KansegError

AFFINE_TOLERANCE = 1e-3  # mm; headers written by different tools differ in float rounding


def check_volume_size(path: str | os.PathLike, shape: Sequence[int], affine: np.ndarray, zooms: Sequence[float],
                      channels: int, spacing: Sequence[float] | None, max_volume_mb: float | None,
                      option: str = "data.max_volume_mb") -> None:
    """A volume whose float32 image after resampling exceeds ``max_volume_mb`` is refused before it is read."""
    if not max_volume_mb:
        return
    megabytes = resampled_voxels(affine, shape, zooms, spacing) * channels * 4 / 2**20
    if megabytes > max_volume_mb:
        raise KansegError(f"{path}: {'x'.join(map(str, shape[:3]))} voxels need {megabytes:.0f} MB after resampling, "
                          f"more than {option}={max_volume_mb:g}; raise it or resample the scan coarser")


def check_case_grid(images: Sequence[str | os.PathLike], labels: Sequence[str | os.PathLike], in_channels: int
                    ) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    """Header-only checks of one case (channel count, label grid = image grid); returns the image's
    ``(shape, affine, zooms)``."""
    shape, affine, zooms = nifti_geometry(images[0])
    channels = 0
    for path in images:
        file_shape, file_affine, _ = nifti_geometry(path)
        channels += file_shape[3] if len(file_shape) > 3 else 1
        if tuple(file_shape[:3]) != tuple(shape[:3]) or not np.allclose(file_affine, affine, atol=AFFINE_TOLERANCE):
            raise KansegError(f"{path}: channel file's grid differs from {images[0]}")
    if channels != in_channels:
        raise KansegError(f"{images[0]}: image has {channels} channel(s) but dataset.json declares {in_channels} "
                          f"('modality' / 'channel_names')")
    for label in labels:
        label_shape, label_affine, _ = nifti_geometry(label)
        if tuple(label_shape[:3]) != tuple(shape[:3]):
            raise KansegError(f"{label}: label volume is {'x'.join(map(str, label_shape[:3]))} but its image "
                              f"{images[0]} is {'x'.join(map(str, shape[:3]))}")
        if not np.allclose(label_affine, affine, atol=AFFINE_TOLERANCE):
            raise KansegError(f"{label}: label affine differs from its image {images[0]} "
                              f"(max difference {np.abs(label_affine - affine).max():.3g} mm)")
    return shape, affine, zooms


def read_case_3d(
    images: Sequence[str | os.PathLike],
    labels: Sequence[str | os.PathLike],
    *,
    in_channels: int,
    label_values: Sequence[int] | None = None,
    mask_threshold: float = 0,
    spacing: Sequence[float] | None = None,
    max_volume_mb: float | None = None,
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(image float32 (C, X, Y, Z), label float32 (1, X, Y, Z) | None, affine)`` in file order.

    Labels are class indices when ``label_values`` is given (multi-class), else ``> mask_threshold``.
    """
    shape, affine, zooms = check_case_grid(images, labels, in_channels)
    check_volume_size(images[0], shape, affine, zooms, in_channels, spacing, max_volume_mb)
    arrays = [read_nifti(path)[0] for path in images]
    arrays = [a if a.ndim == 4 else a[..., None] for a in arrays]
    image = np.ascontiguousarray(np.moveaxis(np.concatenate(arrays, axis=-1), -1, 0), dtype=np.float32)
    if not labels:
        return image, None, affine
    if label_values is not None:
        label = to_class_indices(read_label_values(labels[0]), label_values, labels[0])
    else:
        data, _ = read_nifti(labels[0])
        label = (data[..., 0] if data.ndim == 4 else data) > mask_threshold
    return image, label[None].astype(np.float32), affine
