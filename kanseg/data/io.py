"""Reading images and masks from disk: 2D with OpenCV, 3D with nibabel.

Arrays are channel-last, as stored: 2D images ``(H, W, C)`` in RGB order, 3D images
``(X, Y, Z, C)`` in the NIfTI array order (no reorientation). Masks come back as ``bool`` arrays
of the spatial shape. Every failure is a :class:`~kanseg.errors.KansegError` naming the file.

NIfTI files are opened in one place, :func:`open_nifti` (header checks and the one size limit,
:func:`max_voxels`), for training, ``kanseg data verify`` (:func:`scan_nifti`, streamed) and prediction
(:func:`kanseg.inference.readers.read_volume`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import numpy as np

from kanseg.atomic import atomic_path
from kanseg.errors import KansegError

IMAGE_2D_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
NIFTI_SUFFIXES = (".nii", ".nii.gz")
# Largest NIfTI (voxels x channels) a reader accepts; a header claiming more is treated as corrupt, not
# allocated. 1024^3 float32 is 4 GiB in memory, far beyond any clinical scan. $KANSEG_MAX_VOXELS overrides it.
MAX_VOXELS = 1024**3

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


def label_values_2d(path: str | os.PathLike, max_values: int = 1024) -> set | None:
    """Distinct values stored in a 2D label image (every colour channel; alpha ignored), None if more
    than ``max_values``."""
    array = _decode_2d(Path(path))
    if array.ndim == 3 and array.shape[2] in (2, 4):
        array = array[..., :-1]
    values = set(np.unique(array).tolist())
    return values if len(values) <= max_values else None


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


def max_voxels() -> int:
    """The NIfTI size limit: ``$KANSEG_MAX_VOXELS`` or :data:`MAX_VOXELS` (voxels x channels)."""
    value = os.environ.get("KANSEG_MAX_VOXELS")
    if not value:
        return MAX_VOXELS
    try:
        return int(float(value))
    except ValueError:
        raise KansegError(f"KANSEG_MAX_VOXELS must be a number of voxels, got {value!r}") from None


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return f"{type(err).__name__}: {text[0]}" if text else type(err).__name__


def open_nifti(path: str | os.PathLike, limit: int | None = None):
    """Open a NIfTI file and check its header before any voxel is read; ``(image, shape)``.

    ``shape`` is ``(X, Y[, Z[, C]])`` (the vector layout ``(X, Y, Z, 1, C)`` folded to ``(X, Y, Z, C)``).
    A header claiming more than ``limit`` voxels (default :func:`max_voxels`) or an uncompressed file
    shorter than its header says is an error, so a bad file never triggers a huge allocation.
    """
    import nibabel as nib

    path = Path(path)
    if not path.is_file():
        raise KansegError(f"file not found: {path}")
    try:
        image = nib.load(str(path))
    except Exception as err:  # nibabel raises many types for non-NIfTI / corrupt headers
        raise KansegError(f"{path}: cannot read NIfTI header ({_first_line(err)})")
    if not isinstance(image, nib.Nifti1Image):  # Nifti2Image subclasses Nifti1Image
        raise KansegError(f"{path}: not a NIfTI image ({type(image).__name__})")
    shape = tuple(int(s) for s in image.header.get_data_shape())
    if len(shape) == 5 and shape[3] == 1:  # (X, Y, Z, 1, C): NIfTI's vector-valued layout
        shape = shape[:3] + shape[4:]
    if not 2 <= len(shape) <= 4 or min(shape) < 1:
        raise KansegError(f"{path}: expected a volume (X, Y[, Z[, C]]), header says shape {shape}")
    limit = max_voxels() if limit is None else limit
    voxels = int(np.prod(shape, dtype=np.float64))
    if voxels > limit:
        raise KansegError(
            f"{path}: header claims {'x'.join(map(str, shape))} = {voxels:.3g} voxels, more than the limit "
            f"of {limit:.3g} (KANSEG_MAX_VOXELS); the header is corrupt or the volume is far too large"
        )
    if path.name.lower().endswith(".nii"):  # uncompressed: the file size must hold all voxels
        needed = _data_offset(image) + voxels * image.header.get_data_dtype().itemsize
        if path.stat().st_size < needed:
            raise KansegError(f"{path}: truncated NIfTI ({path.stat().st_size} bytes, header needs {needed})")
    return image, shape


def _data_offset(image) -> int:
    return int(getattr(image.dataobj, "offset", image.header["vox_offset"]))


def read_nifti_image(path: str | os.PathLike, limit: int | None = None):
    """Read a NIfTI volume: ``(X, Y, Z[, C])`` float32 (scaling applied, file order) and its image object."""
    image, shape = open_nifti(path, limit)
    try:
        data = image.get_fdata(caching="unchanged", dtype=np.float32)
    except Exception as err:  # truncated gzip stream, I/O error
        raise KansegError(f"{path}: cannot read voxel data ({_first_line(err)})")
    return data.reshape(shape), image


def read_nifti(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """Read a NIfTI volume: ``(X, Y, Z[, C])`` float32 array in file order, and its 4x4 affine."""
    data, image = read_nifti_image(path)
    return data, np.asarray(image.affine, dtype=np.float64)


def scan_nifti(path: str | os.PathLike, chunk_bytes: int = 1 << 22,
               values: bool = False, max_values: int = 1024) -> tuple[tuple[int, ...], set | None]:
    """Decode a NIfTI file's whole data block in chunks (bounded memory): ``(shape, distinct values)``.

    Fails like :func:`read_nifti` on every file it cannot read (corrupt header, truncated or damaged
    gzip stream, short data block). ``values``: also collect the distinct stored values (scaling
    applied), up to ``max_values`` of them (``None`` beyond: not a label map).
    """
    from nibabel.openers import ImageOpener

    image, shape = open_nifti(path)
    dtype = image.header.get_data_dtype()
    needed = int(np.prod(shape)) * dtype.itemsize
    slope, inter = image.dataobj.slope, image.dataobj.inter
    found: set | None = set() if values else None
    step = max(dtype.itemsize, chunk_bytes // dtype.itemsize * dtype.itemsize)
    read = 0
    try:
        with ImageOpener(str(path), "rb") as stream:
            stream.seek(_data_offset(image))
            while read < needed:
                block = stream.read(min(step, needed - read))
                if not block:
                    break
                read += len(block)
                if found is not None and len(block) % dtype.itemsize == 0:
                    chunk = np.unique(np.frombuffer(block, dtype=dtype))
                    scaled = chunk * (1.0 if np.isnan(slope) else slope) + (0.0 if np.isnan(inter) else inter)
                    found.update(scaled.tolist())
                    if len(found) > max_values:
                        found = None
    except Exception as err:  # damaged gzip stream, I/O error
        raise KansegError(f"{path}: cannot read voxel data ({_first_line(err)})")
    if read < needed:
        raise KansegError(f"{path}: truncated NIfTI (data ends after {read} of {needed} bytes)")
    return shape, found


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
    with atomic_path(path) as tmp:
        encoded.tofile(tmp)
    return path


def nifti_geometry(path: str | os.PathLike) -> tuple[tuple[int, ...], np.ndarray, tuple[float, ...]]:
    """``(shape, affine, zooms)`` from the header only: full shape (4D keeps its channel axis), the
    float64 4x4 affine and the three spatial voxel sizes."""
    image = open_nifti(path)[0]
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
