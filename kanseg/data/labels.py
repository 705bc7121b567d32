"""Label maps: class names and on-disk label values of a multi-class dataset, and the mapping of
stored values to contiguous class indices ``0..K-1`` (background first)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from kanseg.errors import KansegError


def is_multiclass(preprocessing: dict) -> bool:
    """True when the preprocessing declares more than two classes (background + 2 or more):
    :func:`kanseg.metrics.is_multiclass` of its class names."""
    from kanseg.metrics import is_multiclass as several_foreground_classes  # monai: imported when first needed

    return several_foreground_classes(preprocessing.get("classes"))


def class_names(preprocessing: dict) -> list[str]:
    """Class names incl. background: the declared ones, or ``["background", "foreground"]`` (binary)."""
    return list(preprocessing.get("classes") or ("background", "foreground"))


def to_class_indices(values: np.ndarray, label_values: Sequence[int], path: str | os.PathLike) -> np.ndarray:
    """Stored label values -> uint8 class indices (position in ``label_values``); a value outside the
    label map is a :class:`KansegError` naming ``path``."""
    label_values = np.asarray(label_values, dtype=np.int64)
    order = np.argsort(label_values)
    sorted_values = label_values[order]
    position = np.clip(np.searchsorted(sorted_values, values), 0, len(sorted_values) - 1)
    unknown = sorted_values[position] != values
    if unknown.any():
        bad = sorted(int(v) for v in np.unique(values[unknown])[:5])
        raise KansegError(f"{path}: label values {bad} are not in the dataset's label map "
                          f"{[int(v) for v in label_values]} (dataset.json 'labels')")
    return order[position].astype(np.uint8)
