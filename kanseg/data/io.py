"""Reading images and masks from disk: 2D with OpenCV, 3D with nibabel.

Arrays are channel-last, as stored: 2D images ``(H, W, C)`` in RGB order, 3D images
``(X, Y, Z, C)`` in the NIfTI array order (no reorientation). Masks come back as ``bool`` arrays
of the spatial shape. Every failure is a :class:`~kanseg.errors.KansegError` naming the file.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kanseg.errors import KansegError

IMAGE_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
MAX_VOXELS = 2**31  # a header claiming more than this is treated as corrupt, not allocated

# Unreadable files become one KansegError line each; OpenCV's own warnings would only add noise.
cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_SILENT)


def is_nifti(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(NIFTI_SUFFIXES)


def is_image_2d(path: str | os.PathLike) -> bool:
    return str(path).lower().endswith(IMAGE_2D_SUFFIXES)


def _decode_2d(path: Path) -> np.ndarray:
    """Raw decode with ``cv2.IMREAD_UNCHANGED`` (BGR/BGRA order, any depth)."""
    if not path.is_file():
        raise KansegError(f"file not found: {path}")
    # np.fromfile + imdecode also handles non-ASCII paths, unlike cv2.imread.
    data = np.fromfile(path, dtype=np.uint8)
    array = cv2.imdecode(data, cv2.IMREAD_UNCHANGED) if data.size else None
    if array is None or array.size == 0:
        raise KansegError(f"cannot read image {path}: corrupt, truncated or not an image")
    return array


def read_image_2d(path: str | os.PathLike) -> np.ndarray:
    """Read a 2D image as ``(H, W, C)``, C in {1, 3}, RGB order, original dtype (alpha dropped)."""
    array = _decode_2d(Path(path))
    if array.ndim == 2:
        return array[..., None]
    if array.shape[2] == 2:  # grey + alpha
        return array[..., :1]
    return cv2.cvtColor(array[..., :3], cv2.COLOR_BGR2RGB)


def _mask_foreground(array: np.ndarray, threshold: float) -> np.ndarray:
    """``(H, W[, C])`` decoded mask -> ``(H, W)`` bool, any colour channel above ``threshold``."""
    if array.ndim == 2:
        return array > threshold
    colour = array[..., :3] if array.shape[2] == 4 else array[..., :1] if array.shape[2] == 2 else array
    foreground = (colour > threshold).any(axis=2)
    if array.shape[2] in (2, 4) and not foreground.any():
        # Some tools store the mask only in the alpha channel; an opaque alpha is not a mask.
        alpha = array[..., -1]
        if alpha.min() != alpha.max():
            foreground = alpha > threshold
    return foreground


def read_mask_2d(paths: str | os.PathLike | Sequence[str | os.PathLike], threshold: float = 0) -> np.ndarray:
    """Read one or more mask files and OR-merge them into one ``(H, W)`` bool mask.

    1-bit, 8-bit grey, RGB and RGBA masks are accepted: a pixel is foreground when any colour
    channel is ``> threshold`` (the alpha channel is ignored unless it is the only content).
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise KansegError("no mask file given")
    merged = None
    for path in paths:
        mask = _mask_foreground(_decode_2d(Path(path)), threshold)
        if merged is None:
            merged = mask
        elif mask.shape != merged.shape:
            raise KansegError(f"mask {path} is {mask.shape[1]}x{mask.shape[0]}, other masks of the case "
                              f"are {merged.shape[1]}x{merged.shape[0]}")
        else:
            merged |= mask
    return merged


def _load_nifti(path: Path):
    import nibabel as nib

    if not path.is_file():
        raise KansegError(f"file not found: {path}")
    try:
        image = nib.load(str(path))
    except Exception as err:
        raise KansegError(f"cannot read NIfTI {path}: {type(err).__name__}: {str(err).splitlines()[0]}")
    shape = tuple(int(s) for s in image.shape)
    if len(shape) < 2 or min(shape) < 1 or int(np.prod(shape, dtype=np.float64)) > MAX_VOXELS:
        raise KansegError(f"NIfTI {path} has an implausible shape {shape} in its header")
    return image


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume: ``(X, Y, Z[, C])`` float32 array in file order, and its 4x4 affine."""
    path = Path(path)
    image = _load_nifti(path)
    try:
        data = np.asarray(image.dataobj, dtype=np.float32)
    except Exception as err:  # truncated data block
        raise KansegError(f"cannot read NIfTI {path}: {type(err).__name__}: {str(err).splitlines()[0]}")
    return data, np.asarray(image.affine, dtype=np.float64)


def nifti_shape(path: str | os.PathLike) -> tuple[int, ...]:
    """Spatial shape from the header only (cheap; used by ``verify``)."""
    return tuple(int(s) for s in _load_nifti(Path(path)).shape[:3])


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Channel-last image of any supported kind: ``(H, W, C)`` (2D) or ``(X, Y, Z, C)`` (3D)."""
    if is_nifti(path):
        data, _ = read_nifti(path)
        return data if data.ndim == 4 else data[..., None]
    return read_image_2d(path)


def read_mask(paths: str | os.PathLike | Sequence[str | os.PathLike], threshold: float = 0) -> np.ndarray:
    """Bool foreground mask of the spatial shape, from 2D mask file(s) or a NIfTI label volume."""
    first = paths if isinstance(paths, (str, os.PathLike)) else paths[0]
    if is_nifti(first):
        data, _ = read_nifti(first)
        return (data[..., 0] if data.ndim == 4 else data) > threshold
    return read_mask_2d(paths, threshold)


def write_image_atomic(path: str | os.PathLike, array: np.ndarray, params: Sequence[int] = ()) -> Path:
    """Write a 2D image (RGB or grey, channel-last) with OpenCV via a temporary file + ``os.replace``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_RGB2BGR)
    elif array.ndim == 3 and array.shape[2] == 4:
        array = cv2.cvtColor(array, cv2.COLOR_RGBA2BGRA)
    ok, encoded = cv2.imencode(path.suffix, array, list(params))
    if not ok:
        raise KansegError(f"cannot encode image {path}")
    tmp = path.with_name(f".{path.name}.tmp")
    encoded.tofile(tmp)
    os.replace(tmp, path)
    return path


def nifti_geometry(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    """``(shape, affine, zooms)`` from the header only: full shape (4D keeps its channel axis), the
    float64 4x4 affine and the three spatial voxel sizes."""
    image = _load_nifti(Path(path))
    zooms = tuple(float(z) for z in image.header.get_zooms()[:3])
    return tuple(int(s) for s in image.shape), np.asarray(image.affine, dtype=np.float64), zooms


def read_label_values(paths: str | os.PathLike | Sequence[str | os.PathLike]) -> np.ndarray:
    """Label values as stored (not binarised): int64 ``(*spatial)`` from a NIfTI label volume or a 2D
    label image (first channel; several 2D files are merged by their maximum)."""
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if is_nifti(paths[0]):
        data, _ = read_nifti(paths[0])
        data = data[..., 0] if data.ndim == 4 else data
        values = np.rint(data)
        if not np.array_equal(values, data):
            raise KansegError(f"label volume {paths[0]} holds non-integer values (e.g. {data[values != data][0]:g})")
        return values.astype(np.int64)
    merged = None
    for path in paths:
        array = _decode_2d(Path(path))
        array = (array if array.ndim == 2 else array[..., 0]).astype(np.int64)
        merged = array if merged is None else np.maximum(merged, array)
    return merged
