"""Dataset fingerprint (nnU-Net style), computed once over the training cases of a 3D dataset.

::

    {"version": 1, "num_cases": 148,
     "spacing": {"median": [1, 1, 1], "min": [...], "max": [...]},        # mm, RAS axis order
     "shape": {"median": [36, 50, 35], "min": [...], "max": [...]},       # voxels, RAS axis order
     "intensity": [{"mean", "std", "median", "min", "max",
                    "percentile_00_5", "percentile_99_5"}, ...]}          # per channel, foreground voxels

Intensity statistics are over foreground voxels (label > 0), at most ``samples_per_case`` of them
per case drawn without replacement with a seeded generator (memory stays bounded on large CTs);
with fewer foreground voxels than that, every one counts, so the numbers equal numpy's on the
concatenated foreground. Reading the cases also checks them (see :mod:`kanseg.data.volumes`).

The result is stored in ``preprocessing["fingerprint"]`` (so in every checkpoint) and cached as JSON
in ``$KANSEG_CACHE/fingerprints/`` under a key of the dataset root, case ids and the files' sizes and
modification times: a changed file means a new fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kanseg.data.cases import Case
from kanseg.data.io import read_label_values
from kanseg.data.labels import to_class_indices
from kanseg.data.spatial import canonical_shape, canonical_spacing
from kanseg.data.volumes import read_case_3d

VERSION = 1
SAMPLES_PER_CASE = 10_000


def _summary(values: np.ndarray) -> dict[str, list[float]]:
    return {name: [float(v) for v in fn(values, axis=0)] for name, fn in
            (("median", np.median), ("min", np.min), ("max", np.max))}


def intensity_statistics(samples: np.ndarray) -> dict[str, float]:
    """Statistics of one channel's foreground samples (empty -> zeros and std 1)."""
    if samples.size == 0:
        return {"mean": 0.0, "std": 1.0, "median": 0.0, "min": 0.0, "max": 0.0,
                "percentile_00_5": 0.0, "percentile_99_5": 0.0}
    samples = samples.astype(np.float64)
    low, high = np.percentile(samples, [0.5, 99.5])
    return {"mean": float(samples.mean()), "std": float(samples.std()), "median": float(np.median(samples)),
            "min": float(samples.min()), "max": float(samples.max()),
            "percentile_00_5": float(low), "percentile_99_5": float(high)}


def compute_fingerprint(cases: Sequence[Case], *, in_channels: int, label_values: Sequence[int] | None = None,
                        samples_per_case: int = SAMPLES_PER_CASE, seed: int = 0,
                        max_volume_mb: float | None = None) -> dict:
    """Fingerprint of ``cases`` (each read once and checked); see the module docstring."""
    rng = np.random.default_rng(seed)
    spacings, shapes = [], []
    samples: list[list[np.ndarray]] = [[] for _ in range(in_channels)]
    for case in cases:
        image, label, affine = read_case_3d(case.image, case.label, in_channels=in_channels,
                                            label_values=label_values, max_volume_mb=max_volume_mb)
        zooms = np.sqrt((affine[:3, :3] ** 2).sum(axis=0))
        spacings.append(canonical_spacing(affine, zooms))
        shapes.append(canonical_shape(affine, image.shape[1:]))
        foreground = np.flatnonzero(label[0] > 0) if label is not None else np.arange(image[0].size)
        if foreground.size > samples_per_case:
            foreground = rng.choice(foreground, samples_per_case, replace=False)
        for c in range(in_channels):
            samples[c].append(image[c].reshape(-1)[foreground])
    return {
        "version": VERSION,
        "num_cases": len(cases),
        "spacing": _summary(np.array(spacings)),
        "shape": _summary(np.array(shapes, dtype=np.float64)),
        "intensity": [intensity_statistics(np.concatenate(s)) for s in samples],
    }


def fingerprint_key(root: Path, cases: Sequence[Case]) -> str:
    """Hash of the root, case ids and every file's size and mtime."""
    parts = [str(Path(root).resolve()), str(VERSION)]
    for case in cases:
        for path in (*case.image, *case.label):
            stat = os.stat(path)
            parts.append(f"{case.id}|{path}|{stat.st_size}|{stat.st_mtime_ns}")
    return hashlib.sha1("\n".join(parts).encode()).hexdigest()[:16]


def cached_fingerprint(cache_dir: Path, name: str, root: Path, cases: Sequence[Case], **kwargs) -> dict:
    """The fingerprint of ``cases`` from ``cache_dir`` when up to date, else computed and stored (atomically)."""
    path = Path(cache_dir) / f"{name}-{fingerprint_key(root, cases)}.json"
    if path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, json.JSONDecodeError):
            pass
    fingerprint = compute_fingerprint(cases, **kwargs)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(fingerprint, indent=1))
        os.replace(tmp, path)
    except OSError:  # a read-only cache only costs the recomputation
        pass
    return json.loads(json.dumps(fingerprint))


def check_labels_once(cache_dir: Path, name: str, root: Path, cases: Sequence[Case],
                      label_values: Sequence[int]) -> None:
    """Check every label file of ``cases`` against the label map (values only; the fingerprint reads the
    training cases anyway), remembering a clean result in ``cache_dir`` so it costs one pass per file set."""
    marker = Path(cache_dir) / f"{name}-labels-{fingerprint_key(root, cases)}.ok"
    if marker.is_file():
        return
    for case in cases:
        to_class_indices(read_label_values(case.label), label_values, case.label[0])
    try:
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(json.dumps([int(v) for v in label_values]))
    except OSError:
        pass
