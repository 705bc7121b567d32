"""Writing predictions: PNG for 2D, NIfTI (input affine + header) for 3D, always atomically.

Each writer encodes into a temporary file in the destination folder and ``os.replace``s it
(:func:`kanseg.atomic.atomic_path`), so an interrupted run never leaves a half-written mask behind.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

from kanseg.atomic import atomic_path
from kanseg.errors import KansegError


def label_map(mask: np.ndarray, label_values: Sequence[int] | None = None) -> np.ndarray:
    """Class indices (*spatial) -> uint8 label values as on disk (``label_values[k]`` for class k;
    None = the indices themselves)."""
    if label_values is None:
        return mask.astype(np.uint8)
    values = np.asarray(label_values)
    if values.min() < 0 or values.max() > 255:
        raise KansegError(f"label values {list(label_values)} do not fit an 8-bit label map")
    if int(mask.max(initial=0)) >= len(values):
        raise KansegError(f"class index {int(mask.max())} has no label value (label values {list(label_values)})")
    return values.astype(np.uint8)[mask]


def write_png(path: str | os.PathLike, image: np.ndarray) -> Path:
    """Write ``(H, W)`` grey or ``(H, W, 3)`` RGB uint8 as PNG."""
    if image.ndim == 3:
        image = cv2.cvtColor(np.ascontiguousarray(image), cv2.COLOR_RGB2BGR)
    with atomic_path(path, ".png") as tmp:
        if not cv2.imwrite(str(tmp), image):
            raise KansegError(f"cannot write {path}")
    return Path(path)


def write_nifti(path: str | os.PathLike, data: np.ndarray, reference: nib.Nifti1Image) -> Path:
    """Write ``(X, Y, Z)`` data as NIfTI with ``reference``'s affine and header.

    The header is copied (spacing, qform/sform and their codes, units, description, intent...); only
    the fields describing the new data change: shape, data type and scaling (reset to none).
    """
    header = reference.header.copy()
    header.set_data_dtype(data.dtype)
    header.set_slope_inter(None, None)
    out = type(reference)(data, reference.affine, header)
    # nibabel rebuilds qform/sform from the affine; restore the reference's own matrices and codes.
    out.set_qform(reference.get_qform(), int(reference.header["qform_code"]))
    out.set_sform(reference.get_sform(), int(reference.header["sform_code"]))
    suffix = ".nii.gz" if str(path).lower().endswith(".gz") else ".nii"
    with atomic_path(path, suffix) as tmp:
        nib.save(out, tmp)
    return Path(path)
