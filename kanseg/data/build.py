"""``build_dataset``: a dataset name or ``dataset.json`` path -> ``SegmentationDataset``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path


from kanseg.data.adapters import ADAPTERS
from kanseg.data.cases import DatasetSource
from kanseg.data.dataset import SegmentationDataset
from kanseg.data.fingerprint import cached_fingerprint, check_labels_once
from kanseg.data.generic import open_dataset_json
from kanseg.data.names import (  # noqa: F401 (DATASETS, is_dataset_json_manifest: API)
    DATASETS, DEMO, dataset_kind, is_dataset_json_manifest, manifest_data_root,
)
from kanseg.data.spatial import ORIENTATION
from kanseg.data.volumes import check_case_grid
from kanseg.data.synthetic import generate_synthetic
from kanseg.errors import KansegError

DEMO_VERSION = "v1"  # bump when the demo generator changes
DEMO_CASES, DEMO_SIZE = 40, 64  # 24 train / 8 val / 8 test images of 64x64
SUBSETS = ("train", "val", "test")
NORMALIZATIONS = ("auto", "zscore", "ct")
PATCH_MULTIPLE, PATCH_MAX = 8, 128  # default 3D patch: median shape rounded up to 8, at most 128 per axis
DEFAULT_MAX_VOLUME_MB = 2048.0


def cache_home() -> Path:
    """``$KANSEG_CACHE`` or ``~/.cache/kanseg`` (demo data, prepared arrays)."""
    return Path(os.environ.get("KANSEG_CACHE") or Path.home() / ".cache" / "kanseg")


def ensure_demo(data_root: str | os.PathLike | None = None) -> Path:
    """Folder of the demo dataset (generated once, deterministically; safe against concurrent runs)."""
    root = Path(data_root) if data_root else cache_home() / f"demo-{DEMO_VERSION}"
    if (root / "dataset.json").is_file():
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".demo-", dir=root.parent)) / "data"
    try:
        generate_synthetic("decathlon2d", staging, n_cases=DEMO_CASES, seed=0, size=DEMO_SIZE)
        if root.is_dir() and not any(root.iterdir()):
            root.rmdir()
        try:
            os.replace(staging, root)
        except OSError:
            if not (root / "dataset.json").is_file():  # lost a race only if the winner finished
                raise KansegError(f"cannot create the demo dataset at {root}: folder exists and is not a dataset")
    finally:
        shutil.rmtree(staging.parent, ignore_errors=True)
    return root


def open_source(name_or_path: str | os.PathLike, data_root=None, include_normal: bool = False) -> DatasetSource:
    """Cases and splits of a named dataset or a ``dataset.json`` (file or folder)."""
    name = str(name_or_path)
    kind = dataset_kind(name)
    if kind == "demo":
        source = open_dataset_json(ensure_demo(data_root))
        source.name, source.image_size = DEMO, (DEMO_SIZE, DEMO_SIZE)
        return source
    if kind == "adapter":
        return ADAPTERS[name].open(data_root, include_optional=include_normal)
    if kind == "manifest":  # e.g. hippocampus: a dataset.json dataset with a shipped manifest
        source = open_dataset_json(manifest_data_root(name, data_root))
        source.name, source.default_split = name, name
        return source
    return open_dataset_json(Path(name))


def _image_size(value, default, spatial_dims: int):
    size = value if value is not None else default
    if size is None:
        return None
    size = [int(size)] * spatial_dims if isinstance(size, int) else [int(s) for s in size]
    if len(size) != spatial_dims or min(size) < 1:
        raise KansegError(f"image size {value} does not fit a {spatial_dims}D dataset")
    return size


def intensity_3d(source: DatasetSource, fingerprint: dict, normalization: str = "auto") -> dict:
    """nnU-Net's choice: CT -> clip to the foreground 0.5/99.5 percentiles, then the foreground mean/std
    of the fingerprint; anything else (MR...) -> per-image z-score. ``normalization`` overrides it."""
    if normalization not in NORMALIZATIONS:
        raise KansegError(f"unknown normalization {normalization!r}; valid: {', '.join(NORMALIZATIONS)}")
    ct = bool(source.modalities) and all(m.upper() == "CT" for m in source.modalities)
    if normalization == "zscore" or (normalization == "auto" and not ct):
        return {"kind": "zscore"}
    stats = fingerprint["intensity"]
    return {"kind": "ct", "clip": [[s["percentile_00_5"], s["percentile_99_5"]] for s in stats],
            "mean": [s["mean"] for s in stats], "std": [max(s["std"], 1e-8) for s in stats]}


def default_patch_size(fingerprint: dict, spacing) -> list[int]:
    """nnU-Net-like default 3D patch: the median shape after resampling, rounded up to a multiple of
    ``PATCH_MULTIPLE`` (three poolings), at most ``PATCH_MAX`` per axis."""
    median = [s * m / t for s, m, t in zip(fingerprint["shape"]["median"], fingerprint["spacing"]["median"], spacing)]
    return [int(min(PATCH_MAX, PATCH_MULTIPLE * -(-round(m, 3) // PATCH_MULTIPLE))) for m in median]


def preprocessing_of(source: DatasetSource, image_size=None, fingerprint: dict | None = None,
                     normalization: str = "auto", spacing=None) -> dict:
    """The JSON-serialisable preprocessing dict of a source (what checkpoints store).

    3D datasets add ``orientation``, ``spacing`` (target, default the fingerprint's median) and
    ``fingerprint``; multi-class datasets add ``classes`` and ``label_values``. Binary 2D datasets
    produce exactly the dict of earlier versions.
    """
    preprocessing = {
        "dataset": source.name,
        "spatial_dims": source.spatial_dims,
        "in_channels": source.in_channels,
        "image_size": _image_size(image_size, source.image_size, source.spatial_dims),
        "intensity": dict(source.intensity),
        "channel_order": "RGB" if source.spatial_dims == 2 else "file",
        "mask_threshold": source.mask_threshold,
    }
    if fingerprint is not None:
        target = [float(s) for s in (spacing or fingerprint["spacing"]["median"])]
        if len(target) != 3 or min(target) <= 0:
            raise KansegError(f"spacing {spacing} must be three positive sizes in mm")
        preprocessing.update(intensity=intensity_3d(source, fingerprint, normalization), orientation=ORIENTATION,
                             spacing=target, fingerprint=fingerprint)
    if source.classes:
        preprocessing.update(classes=list(source.classes), label_values=[int(v) for v in source.label_values])
    return preprocessing


def prepared_dir(source: DatasetSource, preprocessing: dict) -> Path:
    """Where ``kanseg data prepare`` caches resized arrays for this root + preprocessing."""
    key = json.dumps({"root": str(source.root.resolve()), "pp": preprocessing}, sort_keys=True)
    return cache_home() / "prepared" / f"{source.name}-{hashlib.sha1(key.encode()).hexdigest()[:12]}"


def build_dataset(
    name_or_path: str | os.PathLike,
    *,
    data_root: str | os.PathLike | None = None,
    split: str | None = None,
    subset: str = "train",
    image_size: int | tuple[int, ...] | None = None,
    augment: bool = False,
    seed: int = 0,
    include_normal: bool = False,
    patch_size: tuple[int, ...] | None = None,
    normalization: str = "auto",
    spacing: tuple[float, ...] | None = None,
    elastic: bool = False,
    max_volume_mb: float | None = DEFAULT_MAX_VOLUME_MB,
) -> SegmentationDataset:
    """One subset of one split of a dataset, ready for a DataLoader.

    ``name_or_path``: busi, glas, cvc, demo, or a ``dataset.json`` path (or its folder).
    ``split``: a manifest split (``legacy-2981``, ``legacy-6142``, ``legacy-1187``, ``clean``,
    ``clean-fold<k>``; GlaS also has subsets ``testA``/``testB``), ``default``/``random-<seed>`` for
    generic datasets, or ``all`` (every case found; ``subset`` ignored). ``None`` = the dataset's
    default (``clean`` for the benchmarks). All files of the subset are checked to exist, so a
    missing mask fails here with its name, not in the middle of an epoch.

    3D (NIfTI) datasets: the fingerprint of the split's training cases (each read and checked once,
    then cached) sets the target ``spacing`` (default its median), the default ``patch_size``
    (stored in the preprocessing, so prediction uses it as its window) and, for CT, the intensity
    clipping; ``normalization`` (auto, zscore, ct) overrides the modality's choice, ``elastic``
    adds elastic deformation to the augmentation, ``max_volume_mb`` refuses larger volumes.
    """
    if subset not in SUBSETS and subset not in ("testA", "testB"):
        raise KansegError(f"unknown subset {subset!r}; valid: {', '.join(SUBSETS)}")
    source = open_source(name_or_path, data_root, include_normal)
    cases = [source.cases[i] for i in source.subset_ids(split, subset)]
    for case in cases:
        if not case.label:
            raise KansegError(f"{source.name} case {case.id!r} has no label file, so it cannot be trained or evaluated")
        missing = case.missing_files()
        if missing:
            kind = "mask" if missing[0] in case.label else "image"
            raise KansegError(f"{source.name} case {case.id!r}: {kind} file missing: {missing[0]}")
    if patch_size is not None and len(patch_size) != source.spatial_dims:
        raise KansegError(f"patch size {tuple(patch_size)} does not fit a {source.spatial_dims}D dataset")
    fingerprint = None
    if source.spatial_dims == 3:
        for case in cases:  # headers only: channels, label grids
            check_case_grid(case.image, case.label, source.in_channels)
        train_cases = [source.cases[i] for i in source.subset_ids(split, "train")]
        fingerprint = cached_fingerprint(
            cache_home() / "fingerprints", source.name, source.root, train_cases, in_channels=source.in_channels,
            label_values=source.label_values or None, max_volume_mb=max_volume_mb)
    if source.label_values and (subset != "train" or fingerprint is None):  # 3D training cases: by the fingerprint
        check_labels_once(cache_home() / "fingerprints", source.name, source.root, cases, source.label_values)
    preprocessing = preprocessing_of(source, image_size, fingerprint, normalization, spacing)
    if fingerprint is not None and patch_size is None:  # 3D without a patch size: train on nnU-Net-like patches
        preprocessing["patch_size"] = patch_size = default_patch_size(fingerprint, preprocessing["spacing"])
    cache = prepared_dir(source, preprocessing)
    return SegmentationDataset(
        cases,
        preprocessing,
        mask_threshold=source.mask_threshold,
        augment=augment and subset == "train",
        seed=seed,
        patch_size=patch_size if subset == "train" else None,
        cache_dir=cache if cache.is_dir() else None,
        elastic=elastic,
        max_volume_mb=max_volume_mb,
    )
