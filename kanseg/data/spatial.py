"""3D geometry: the canonical grid a model sees (orientation + spacing) and the way back to a scan's grid.

A NIfTI case is loaded as a MONAI ``MetaTensor`` carrying its 4x4 voxel-to-world affine, reoriented
to ``preprocessing["orientation"]`` (RAS) with ``Orientationd`` and resampled to
``preprocessing["spacing"]`` (mm, in the canonical axis order) with ``Spacingd`` (images linear,
labels nearest). Going back is an explicit affine resample of the model's ``(C, *grid)``
probabilities onto the scan's own ``(affine, shape)``, so a prediction lies on the input's exact
voxel grid whatever the orientation and spacing were.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Orientationd, SpatialResample, Spacingd

ORIENTATION = "RAS"
NIFTI_AXES = (("L", "R"), ("P", "A"), ("I", "S"))  # world axes of NIfTI (RAS+)


def has_geometry(preprocessing: dict) -> bool:
    """True for preprocessing that reorients and resamples (3D NIfTI datasets of this version on)."""
    return preprocessing.get("spatial_dims") == 3 and preprocessing.get("spacing") is not None


def geometry_transforms(preprocessing: dict, keys: Sequence[str]) -> list:
    """``Orientationd`` + ``Spacingd`` for ``keys`` (``label`` nearest), or nothing for 2D / old checkpoints."""
    if not has_geometry(preprocessing):
        return []
    modes = tuple("nearest" if k == "label" else "bilinear" for k in keys)
    return [
        Orientationd(keys=list(keys), axcodes=preprocessing.get("orientation", ORIENTATION), labels=NIFTI_AXES),
        Spacingd(keys=list(keys), pixdim=tuple(preprocessing["spacing"]), mode=modes, dtype=np.float32),
    ]


def canonical_spacing(affine: np.ndarray, zooms: Sequence[float]) -> list[float]:
    """Voxel sizes of a scan in RAS axis order (what ``Orientationd`` makes of its axes)."""
    import nibabel as nib

    ornt = nib.orientations.io_orientation(np.asarray(affine, dtype=np.float64))
    spacing = [0.0, 0.0, 0.0]
    for axis, (target, _) in enumerate(ornt[:3]):
        spacing[int(target)] = float(zooms[axis])
    return spacing


def canonical_shape(affine: np.ndarray, shape: Sequence[int]) -> list[int]:
    """Spatial shape of a scan in RAS axis order."""
    return [int(s) for s in canonical_spacing(affine, shape)]


def resampled_voxels(affine: np.ndarray, shape: Sequence[int], zooms: Sequence[float],
                     spacing: Sequence[float] | None) -> int:
    """Approximate voxel count of a scan after resampling to ``spacing`` (its own count without one)."""
    if spacing is None:
        return int(np.prod(shape[:3], dtype=np.float64))
    extent = np.array(canonical_spacing(affine, [s * z for s, z in zip(shape[:3], zooms[:3])]))
    return int(np.prod(np.ceil(extent / np.asarray(spacing, dtype=np.float64)), dtype=np.float64))


def with_affine(array: np.ndarray | torch.Tensor, affine: np.ndarray) -> MetaTensor:
    """``(C, *spatial)`` array -> ``MetaTensor`` with a float64 affine (what MONAI's spatial transforms read)."""
    return MetaTensor(torch.as_tensor(np.asarray(array)), affine=torch.as_tensor(affine, dtype=torch.float64))


def affine_of(tensor) -> np.ndarray:
    """The 4x4 affine of a ``MetaTensor`` as float64 numpy."""
    return np.asarray(tensor.affine, dtype=np.float64)


def resample_to_grid(prob: torch.Tensor, affine: np.ndarray, target_affine: np.ndarray,
                     target_shape: Sequence[int]) -> torch.Tensor:
    """``(C, *grid)`` probabilities on the grid of ``affine`` -> ``(C, *target_shape)`` on ``target_affine``.

    Linear interpolation, border values outside the source grid. A pure reorientation (flips and axis
    permutations at equal spacing) is exact.
    """
    affine = np.asarray(affine, dtype=np.float64)
    target_affine = np.asarray(target_affine, dtype=np.float64)
    if tuple(prob.shape[1:]) == tuple(target_shape) and np.allclose(affine, target_affine, atol=1e-6):
        return prob
    out = SpatialResample(mode="bilinear", padding_mode="border", align_corners=False, dtype=torch.float32)(
        with_affine(prob.float(), affine), dst_affine=torch.as_tensor(target_affine), spatial_size=tuple(target_shape)
    )
    return out.as_tensor().float() if isinstance(out, MetaTensor) else out.float()


def resize_probabilities(prob: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """(C, *spatial) probabilities -> (C, *size) by (bi/tri)linear interpolation (no-op if equal)."""
    if tuple(prob.shape[1:]) == tuple(size):
        return prob
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[prob.ndim - 1]
    return torch.nn.functional.interpolate(prob[None], size=tuple(size), mode=mode, align_corners=False)[0]
