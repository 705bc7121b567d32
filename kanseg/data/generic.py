"""Generic datasets described by a Decathlon / nnU-Net style ``dataset.json``.

Decathlon: ``"training": [{"image": "./imagesTr/x.nii.gz", "label": "./labelsTr/x.nii.gz"}, ...]``
(an image may be a list of per-channel files). nnU-Net v2: ``"file_ending"`` with
``imagesTr/<case>_0000<ending>`` (one file per channel) and ``labelsTr/<case><ending>``.
NIfTI files make a 3D dataset, any other supported ending a 2D one; labels are binarised
(``> 0``). Splits: ``"kanseg_splits"`` in the json when present (explicit id lists), otherwise
``random-<seed>`` = 80/20 with the legacy algorithm of :mod:`kanseg.data.splits` (test = val).
"""

from __future__ import annotations

import glob
import json
import os
import re
from pathlib import Path

import numpy as np

from kanseg.data.cases import Case, DatasetSource
from kanseg.data.dataset_json import check_cases, check_dataset_json
from kanseg.data.io import is_image_2d, is_nifti, read_image
from kanseg.data.splits import legacy_split
from kanseg.data.transforms import rgb_intensity
from kanseg.errors import KansegError

RANDOM_SPLIT = re.compile(r"^random-(\d+)$")


def _json_path(path: str | os.PathLike) -> Path:
    path = Path(path)
    json_path = path / "dataset.json" if path.is_dir() else path
    if not json_path.is_file():
        raise KansegError(f"no dataset.json at {path} (expected a Decathlon / nnU-Net style dataset folder)")
    return json_path


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


def _random_splits(ids: list[str], seed: int) -> dict:
    train, val = legacy_split(sorted(ids), seed)
    return {"train": train, "val": val, "test": val, "note": "80/20 random split; test = val"}


class GenericSplits(dict):
    """Split table that also answers ``random-<seed>`` for any seed (computed on demand)."""

    patterns = ("random-<seed>",)

    def __init__(self, ids: list[str], explicit: dict) -> None:
        super().__init__(explicit)
        self._ids = ids

    def __contains__(self, split: object) -> bool:
        return super().__contains__(split) or bool(RANDOM_SPLIT.match(str(split)))

    def __missing__(self, split: str) -> dict:
        match = RANDOM_SPLIT.match(split)
        if not match:
            raise KeyError(split)
        return _random_splits(self._ids, int(match[1]))


def open_dataset_json(path: str | os.PathLike) -> DatasetSource:
    """Read ``dataset.json`` (or the folder holding it) into a :class:`DatasetSource`."""
    json_path = _json_path(path)
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
    if spatial_dims == 3:
        modality = " ".join(str(v) for v in meta.get("modality", meta.get("channel_names", {})).values())
        ct = modality.upper() == "CT"
        intensity = {"kind": "range", "a_min": -1000.0, "a_max": 1000.0} if ct else {"kind": "zscore"}
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
    )
