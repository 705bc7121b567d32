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
import re
from collections.abc import Sequence
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


#: nnU-Net's channel files: ``<case>_0000``, ``<case>_0001``, ... (before the suffix)
CHANNEL_FILE = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class ScanInput:
    """One case to predict and the output stem it maps to (``relative`` keeps folder structure).

    ``channels`` lists the per-channel files of a case stored nnU-Net style (``<case>_0000``, ``_0001``...,
    in channel order; ``path`` is the first); empty when the case is the one file ``path``.
    """

    path: Path
    relative: Path  # output location relative to the output folder, without suffix
    channels: tuple[Path, ...] = ()

    @property
    def files(self) -> tuple[Path, ...]:
        """The files whose channels, concatenated in order, make the model input."""
        return self.channels or (self.path,)


def collect_inputs(inputs: list[str | os.PathLike], channels: int | None = None) -> list[ScanInput]:
    """Expand files and folders (recursively, sorted) into the supported scans they contain.

    Files named explicitly are kept even when their suffix is unsupported, so they get a clear
    per-file error later; a path that does not exist raises :class:`KansegError` at once. With ``channels``
    > 1 (the model's input channels), files named ``<case>_0000`` ... ``<case>_{channels-1}`` (nnU-Net) with
    one suffix in one folder become one case ``<case>``, see :func:`group_channel_files`.
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
    return group_channel_files(scans, channels) if channels and channels > 1 else scans


def group_channel_files(scans: list[ScanInput], channels: int) -> list[ScanInput]:
    """Merge the channel files of each case: exactly ``<case>_0000`` ... ``<case>_{channels-1}``, same folder and
    suffix, become one :class:`ScanInput` (at the place of ``_0000``); anything else is left as it is."""

    def key(scan: ScanInput):
        match = CHANNEL_FILE.match(scan.relative.name)
        if not match:
            return None, -1
        return (scan.path.parent, scan.relative.parent, match["case"], scan_suffix(scan.path)), int(match["channel"])

    members: dict[tuple, dict[int, ScanInput]] = {}
    for scan in scans:
        case, channel = key(scan)
        if case is not None:
            members.setdefault(case, {})[channel] = scan
    complete = {case for case, found in members.items() if sorted(found) == list(range(channels))}
    grouped = []
    for scan in scans:
        case, channel = key(scan)
        if case not in complete:
            grouped.append(scan)
        elif channel == 0:
            files = tuple(members[case][c].path for c in range(channels))
            grouped.append(ScanInput(files[0], scan.relative.parent / case[2], files))
    return grouped


def read_image(path: str | os.PathLike | Sequence[str | os.PathLike]) -> np.ndarray:
    """Read a 2D image as ``(H, W, C)``, C in {1, 3}, RGB, stored dtype: decoded exactly as in training.

    Several files (the channel files of one case) are concatenated along C, as in training.
    Channel adaptation to the model (grey <-> RGB) is part of the preprocessing, as in training.
    """
    from kanseg.data.io import read_image_2d

    files = _files(path)
    images = [read_image_2d(f) for f in files]
    for f, image in zip(files[1:], images[1:]):
        if image.shape[:2] != images[0].shape[:2] or image.dtype != images[0].dtype:
            raise KansegError(f"{f}: channel file is {image.shape[1]}x{image.shape[0]} {image.dtype}, but {files[0]} "
                              f"is {images[0].shape[1]}x{images[0].shape[0]} {images[0].dtype}")
    return images[0] if len(images) == 1 else np.concatenate(images, axis=-1)


def read_volume(path: str | os.PathLike | Sequence[str | os.PathLike], in_channels: int
                ) -> tuple[np.ndarray, nib.Nifti1Image]:
    """Read a NIfTI volume as ``(X, Y, Z, in_channels)`` float32 (scaling applied) and its image object.

    Several files (the channel files of one case) are concatenated along the channel axis; they must share
    the first file's grid, whose image object is returned. Headers are checked first
    (:func:`kanseg.data.io.open_nifti`: absurd sizes, truncation; then dimensionality, grid and channel
    count), so a bad file never triggers a huge allocation.
    """
    from kanseg.data.io import open_nifti, read_nifti_image
    from kanseg.data.volumes import AFFINE_TOLERANCE

    files = _files(path)
    headers = [open_nifti(f) for f in files]
    for f, (_, shape) in zip(files, headers):
        if len(shape) not in (3, 4):
            raise KansegError(f"{f}: expected a 3D volume (X, Y, Z[, C]), header says shape {shape}")
    first, first_shape = headers[0]
    for f, (image, shape) in zip(files[1:], headers[1:]):
        if shape[:3] != first_shape[:3] or not np.allclose(image.affine, first.affine, atol=AFFINE_TOLERANCE):
            raise KansegError(f"{f}: channel file's grid differs from {files[0]}")
    shapes = [shape for _, shape in headers]
    channels = sum(shape[3] if len(shape) == 4 else 1 for shape in shapes)
    if channels != in_channels:
        what = f"volume has {channels} channels (4th axis)" if len(files) == 1 else \
            f"its {len(files)} channel files hold {channels} channels"
        raise KansegError(f"{files[0]}: {what} but the model expects {in_channels}")
    arrays, images = [], []
    for f, shape in zip(files, shapes):
        data, image = read_nifti_image(f)
        data = data.reshape(shape if len(shape) == 4 else shape + (1,))
        if not np.isfinite(data).all():
            raise KansegError(f"{f}: volume contains NaN or infinite values")
        arrays.append(data)
        images.append(image)
    return (arrays[0] if len(arrays) == 1 else np.concatenate(arrays, axis=-1)), images[0]


def _files(path: str | os.PathLike | Sequence[str | os.PathLike]) -> list[Path]:
    return [Path(path)] if isinstance(path, (str, os.PathLike)) else [Path(p) for p in path]
