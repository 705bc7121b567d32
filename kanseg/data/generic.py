"""Generic datasets described by a Decathlon / nnU-Net style ``dataset.json``.

Decathlon: ``"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}, ...]``
(an image may be a list of per-channel files). nnU-Net v2: ``"file_ending"`` with
``imagesTr/<case>_0000<ending>`` (one file per channel) and ``labelsTr/<case><ending>``.
NIfTI files make a 3D dataset, any other supported ending a 2D one. Labels: a ``"labels"`` map
with more than two entries (Decathlon ``{"0": "background", "1": "anterior"}`` or nnU-Net v2
``{"background": 0, "anterior": 1}``) makes a multi-class dataset (classes in label-value order);
otherwise labels are binarised (``> 0``). Splits: ``"kanseg_splits"`` in the json when present
(explicit id lists), otherwise ``random-<seed>`` = 80/20 with the legacy algorithm of
:mod:`kanseg.data.splits` (test = val); ``fold<k>`` (k = 0..4) are five cross-validation folds over the cases
that are not in the ``default`` split's test set. A shipped manifest also provides splits: ``<manifest>`` (its default split) or
``<manifest>:<split>``, e.g. ``--split hippocampus`` with ``data_manifests/hippocampus.json``.
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

import numpy as np

from kanseg.data.cases import Case, DatasetSource
from kanseg.data.dataset_json import check_cases, check_dataset_json, dataset_json_path
from kanseg.data.io import is_image_2d, is_nifti, read_image, read_label_values
from kanseg.data.manifests import load_manifest, manifest_dir, manifest_splits
from kanseg.data.splits import N_FOLDS, cross_validation, legacy_split, stratified_folds
from kanseg.data.transforms import rgb_intensity
from kanseg.errors import KansegError

RANDOM_SPLIT = re.compile(r"^random-(\d+)$")
FOLD_SPLIT = re.compile(r"^fold(\d+)$")


def _case_id(path: str) -> str:
    name = Path(path).name
    return name[: -len(".nii.gz")] if name.endswith(".nii.gz") else Path(name).stem


def _decathlon_cases(root: Path, entries: list) -> list[Case]:
    cases = []
    for entry in entries:
        images = entry["image"] if isinstance(entry["image"], list) else [entry["image"]]
        images = tuple((root / p).resolve() for p in images)
        label = (root / entry["label"]).resolve() if entry.get("label") else None
        cases.append(Case(_case_id(str(images[0])), images, (label,) if label else ()))
    return cases


def _nnunet_cases(root: Path, meta: dict) -> list[Case]:
    """Channel files are those present (an RGB PNG is one ``_0000`` file for channels R, G, B)."""
    ending = meta["file_ending"]
    cases = []
    for label in sorted((root / "labelsTr").glob(f"*{ending}")):
        case_id = label.name[: -len(ending)]
        images = tuple(sorted((root / "imagesTr").glob(f"{glob.escape(case_id)}_[0-9][0-9][0-9][0-9]{ending}")))
        cases.append(Case(case_id, images or (root / "imagesTr" / f"{case_id}_0000{ending}",), (label,)))
    return cases


def _first_readable_images(cases: list[Case]) -> list[np.ndarray]:
    """Channel arrays of the first case that can be read (a corrupt case is verify's business)."""
    first_error = None
    for case in cases:
        try:
            return [read_image(p) for p in case.image]
        except KansegError as err:
            first_error = first_error or err
    raise first_error


def read_label_map(meta: dict, json_path: Path) -> tuple[tuple[str, ...], tuple[int, ...]] | None:
    """``(class names, label values)`` sorted by value from Decathlon or nnU-Net v2 ``labels``; None if absent."""
    labels = meta.get("labels")
    if labels is None:
        return None
    if not isinstance(labels, dict) or not labels:
        raise KansegError(f"{json_path}: 'labels' must be a non-empty mapping")
    pairs = []
    for key, value in labels.items():
        if isinstance(value, (list, tuple)):
            raise KansegError(f"{json_path}: label {key!r} is a region (list of values); region-based labels "
                              "are not supported")
        try:  # Decathlon: value string -> name; nnU-Net v2: name -> value
            pairs.append((int(key), str(value)) if str(key).lstrip("-").isdigit() else (int(value), str(key)))
        except (TypeError, ValueError):
            raise KansegError(f"{json_path}: label {key!r}: {value!r} is neither 'value': 'name' nor 'name': value")
    values = [v for v, _ in pairs]
    if len(set(values)) != len(values) or min(values) != 0:
        raise KansegError(f"{json_path}: label values {sorted(values)} must be distinct and start with 0 (background)")
    pairs.sort()
    return tuple(name for _, name in pairs), tuple(value for value, _ in pairs)


def _check_undeclared_labels(cases: list[Case], json_path: Path) -> None:
    """Without ``labels`` a dataset is binary; a first label file with more than two values says otherwise."""
    for case in cases:
        try:
            values = np.unique(read_label_values(case.label))
        except (KansegError, IndexError):
            continue
        if len(values) > 2:
            raise KansegError(f"{json_path} has no 'labels' map, but {case.label[0]} holds the values "
                              f"{[int(v) for v in values]}: declare them, e.g. \"labels\": "
                              '{"0": "background", "1": "...", "2": "..."}')
        return


def _channel_names(meta: dict) -> tuple[str, ...]:
    names = meta.get("modality", meta.get("channel_names", {}))
    if not isinstance(names, dict):
        return ()
    return tuple(str(names[k]) for k in sorted(names, key=lambda k: int(k) if str(k).isdigit() else 0))


def _random_splits(ids: list[str], seed: int) -> dict:
    train, val = legacy_split(sorted(ids), seed)
    return {"train": train, "val": val, "test": val, "note": "80/20 random split; test = val"}


def _fold_split(ids: list[str], default: dict | None, k: int) -> dict:
    """``fold<k>``: five seeded folds over the ids that are not test cases (the train + val of the json's
    ``default`` split, keeping its test set; without one, every case, and test = val as in ``random-<seed>``)."""
    if not 0 <= k < N_FOLDS:
        raise KansegError(f"fold {k} does not exist; folds are 0..{N_FOLDS - 1}")
    pool = sorted(default["train"] + default["val"]) if default else sorted(ids)
    folds = stratified_folds(pool, [""] * len(pool), N_FOLDS, seed=0)
    entry = cross_validation(folds, default["test"] if default else folds[k])[k]
    where = "train + val of the default split, its test kept" if default else "all cases; test = val"
    return {**entry, "note": f"cross-validation fold {k} of {N_FOLDS} (seed 0) over the {len(pool)} {where}"}


def _manifest_split(split: str) -> dict | None:
    """``<manifest>`` / ``<manifest>:<split>`` -> that split of ``data_manifests/<manifest>.json``, else None."""
    name, _, sub = split.partition(":")
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", name) or not (manifest_dir() / f"{name}.json").is_file():
        return None
    manifest = load_manifest(name)
    splits = manifest_splits(manifest)
    sub = sub or manifest.get("default_split", "")
    if sub not in splits:
        raise KansegError(f"manifest {name} has no split {sub!r}; valid: {', '.join(sorted(splits))}")
    return splits[sub]


class GenericSplits(dict):
    """Split table that also answers ``random-<seed>`` for any seed, ``fold<k>`` and ``<manifest>[:<split>]``
    for the manifests in ``data_manifests/`` (all resolved on demand)."""

    patterns = ("random-<seed>", f"fold<0..{N_FOLDS - 1}>")

    def __init__(self, ids: list[str], explicit: dict) -> None:
        super().__init__(explicit)
        self._ids = ids

    def __contains__(self, split: object) -> bool:
        return (super().__contains__(split) or bool(RANDOM_SPLIT.match(str(split)))
                or bool(FOLD_SPLIT.match(str(split))) or _manifest_split(str(split)) is not None)

    def __missing__(self, split: str) -> dict:
        match = RANDOM_SPLIT.match(split)
        if match:
            return _random_splits(self._ids, int(match[1]))
        match = FOLD_SPLIT.match(split)
        if match:
            return _fold_split(self._ids, self.get("default"), int(match[1]))
        entry = _manifest_split(split)
        if entry is None:
            raise KeyError(split)
        return entry


def open_dataset_json(path: str | os.PathLike) -> DatasetSource:
    """Read ``dataset.json`` (or the folder holding it) into a :class:`DatasetSource`."""
    json_path = dataset_json_path(path)
    root = json_path.parent
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise KansegError(f"cannot read {json_path}: {err}")
    check_dataset_json(meta, json_path)
    if meta.get("training"):
        cases = _decathlon_cases(root, meta["training"])
    elif meta.get("file_ending"):
        cases = _nnunet_cases(root, meta)
    else:
        raise KansegError(f"{json_path} has neither a 'training' list (Decathlon) nor 'file_ending' (nnU-Net v2)")
    if not cases:
        raise KansegError(f"{json_path} describes no training cases")
    check_cases(json_path, [c.id for c in cases], [str(c.image[0]) for c in cases], meta.get("kanseg_splits", {}))
    first = cases[0].image[0]
    if not (is_nifti(first) or is_image_2d(first)):
        raise KansegError(f"unsupported image type {first.name}; use NIfTI (.nii, .nii.gz) or PNG/JPEG/TIFF/BMP")
    spatial_dims = 3 if is_nifti(first) else 2
    first_images = _first_readable_images(cases)
    in_channels = sum(image.shape[-1] for image in first_images)
    ids = [c.id for c in cases]
    modalities = _channel_names(meta)
    label_map = read_label_map(meta, json_path)
    if label_map is None:
        _check_undeclared_labels(cases, json_path)
    classes, label_values = label_map if label_map and len(label_map[0]) > 2 else ((), ())
    if spatial_dims == 3:
        in_channels = len(modalities) or in_channels  # each case is checked against the declaration
        intensity = {"kind": "zscore"}  # CT: clip-and-normalise from the fingerprint, see build.preprocessing_of
    else:
        dtype = first_images[0].dtype
        intensity = rgb_intensity(in_channels, a_max=np.iinfo(dtype).max if dtype.kind in "ui" else 1.0)
    return DatasetSource(
        name=str(meta.get("name", root.name)),
        root=root,
        cases={c.id: c for c in cases},
        splits=GenericSplits(ids, meta.get("kanseg_splits", {})),
        default_split="default" if "default" in meta.get("kanseg_splits", {}) else "random-0",
        spatial_dims=spatial_dims,
        in_channels=in_channels,
        intensity=intensity,
        image_size=(256, 256) if spatial_dims == 2 else None,
        mask_threshold=0,
        classes=classes,
        label_values=label_values,
        modalities=modalities,
    )
