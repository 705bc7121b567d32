"""Reading new scans for inference: 2D images (PNG/JPEG/TIFF/BMP) and NIfTI volumes.

Every failure caused by the file itself (missing, corrupt, truncated, absurd header, wrong channel
count) raises :class:`~kanseg.errors.KansegError` with one line naming the file, so a batch can
report it and go on with the next file.

Array layouts (channels last, like the datasets' ``native_image``):

- 2D: ``(H, W, C)`` as stored (uint8 or uint16), RGB order, ``C`` in {1, 3}.
- 3D: ``(X, Y, Z, C)`` float32 in the NIfTI's stored voxel order, plus the ``Nifti1Image`` it came from
  (its affine and header are reused for the outputs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from kanseg.errors import KansegError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")


def scan_suffix(path: str | os.PathLike) -> str:
    """Lower-case suffix that decides the reader: ``".png"``, ``".nii.gz"``, ... (``""`` if unsupported)."""
    name = Path(path).name.lower()
    for suffix in NIFTI_SUFFIXES[::-1] + IMAGE_SUFFIXES:  # ".nii.gz" before ".nii"
        if name.endswith(suffix):
            return suffix
    return ""


def scan_stem(path: str | os.PathLike) -> str:
    """File name without its scan suffix: ``case_1.nii.gz`` -> ``case_1``."""
    name = Path(path).name
    return name[: len(name) - len(scan_suffix(path))] if scan_suffix(path) else Path(path).stem


def is_volume(path: str | os.PathLike) -> bool:
    """True for NIfTI files (3D inputs), False for 2D images."""
    return scan_suffix(path) in NIFTI_SUFFIXES


@dataclass(frozen=True)
class ScanInput:
    """One file to predict and the output stem it maps to (``relative`` keeps folder structure)."""

    path: Path
    relative: Path  # output location relative to the output folder, without suffix


def collect_inputs(inputs: list[str | os.PathLike]) -> list[ScanInput]:
    """Expand files and folders (recursively, sorted) into the supported scans they contain.

    Files named explicitly are kept even when their suffix is unsupported, so they get a clear
    per-file error later; a path that does not exist raises :class:`KansegError` at once.
    """
    scans: list[ScanInput] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and scan_suffix(p))
            scans += [ScanInput(p, p.parent.relative_to(path) / scan_stem(p)) for p in found]
        elif path.exists():
            scans.append(ScanInput(path, Path(scan_stem(path))))
        else:
            raise KansegError(f"input not found: {path}")
    return scans


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D image as ``(H, W, C)``, C in {1, 3}, RGB, stored dtype: decoded exactly as in training.

    Channel adaptation to the model (grey <-> RGB) is part of the preprocessing, as in training.
    """
    from kanseg.data.io import read_image_2d

    return read_image_2d(path)


def read_volume(path: str | os.PathLike, in_channels: int) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI volume as ``(X, Y, Z, in_channels)`` float32 (scaling applied) and its image object.

    The header is checked first (:func:`kanseg.data.io.open_nifti`: absurd sizes, truncation; then
    dimensionality and channel count), so a bad file never triggers a huge allocation.
    """
    from kanseg.data.io import open_nifti, read_nifti_image

    path = Path(path)
    _, shape = open_nifti(path)
    if len(shape) not in (3, 4):
        raise KansegError(f"{path}: expected a 3D volume (X, Y, Z[, C]), header says shape {shape}")
    channels = shape[3] if len(shape) == 4 else 1
    if channels != in_channels:
        raise KansegError(f"{path}: volume has {channels} channels (4th axis) but the model expects {in_channels}")
    data, image = read_nifti_image(path)
    data = data.reshape(shape if len(shape) == 4 else shape + (1,))
    if not np.isfinite(data).all():
        raise KansegError(f"{path}: volume contains NaN or infinite values")
    return data, image
