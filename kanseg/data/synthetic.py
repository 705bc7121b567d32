"""Synthetic data in every layout kanseg reads: tests, ``kanseg demo`` and layout examples.

Images are smooth noisy backgrounds with 1-3 brighter, tinted ellipses (2D) or ellipsoids (3D);
the ground truth is the union of the shapes, so a small network learns it in a few CPU epochs.
Each layout reproduces the quirks of the real release (BUSI extra / 1-bit / RGB / RGBA masks and
empty normal masks, GlaS instance maps in BMP, CVC grey mask edges and RGB PNG masks).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from kanseg.data.io import write_image_atomic
from kanseg.errors import KansegError

LAYOUTS = ("busi", "glas", "cvc", "ukan", "decathlon2d", "nifti3d", "multiclass2d", "multiclass3d")
CLASS_NAMES = ("background", "anterior", "posterior", "third", "fourth")
BILEVEL = [cv2.IMWRITE_PNG_BILEVEL, 1]


def blob_case(rng: np.random.Generator, shape: tuple[int, ...], max_blobs: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """One synthetic case: image float32 ``(*shape)`` in [0, 1] and instance map int ``(*shape)`` (0 = bg)."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    instances = np.zeros(shape, dtype=np.int32)
    for k in range(1, int(rng.integers(1, max_blobs + 1)) + 1):
        centre = [rng.uniform(0.25 * s, 0.75 * s) for s in shape]
        radii = [rng.uniform(0.08 * s, 0.2 * s) for s in shape]
        inside = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0
        instances[inside & (instances == 0)] = k
    background = rng.normal(0.3, 0.08, size=[max(2, s // 8) for s in shape]).astype(np.float32)
    image = _upsample(background, shape) + rng.normal(0, 0.04, size=shape).astype(np.float32)
    image[instances > 0] += 0.35
    return np.clip(image, 0, 1), instances


def _upsample(array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if len(shape) == 2:
        return cv2.resize(array, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    import torch

    tensor = torch.from_numpy(array)[None, None]
    return torch.nn.functional.interpolate(tensor, size=shape, mode="trilinear")[0, 0].numpy()


def _rgb(image: np.ndarray, instances: np.ndarray, tint: bool = True) -> np.ndarray:
    """Grey image in [0, 1] -> uint8 RGB; foreground slightly reddish when ``tint``."""
    rgb = np.repeat(image[..., None], 3, axis=2)
    if tint:
        rgb[instances > 0] *= np.array([1.0, 0.8, 0.75], dtype=np.float32)
    return (rgb * 255).round().astype(np.uint8)


def _size(rng: np.random.Generator, size: int, vary: int) -> tuple[int, int]:
    return int(size + rng.integers(-vary, vary + 1)), int(size + rng.integers(-vary, vary + 1))


def _busi(root: Path, n_cases: int, rng: np.random.Generator, size: int = 64) -> None:
    """Official BUSI layout; case (2) of each lesion class has an extra mask, RGB/RGBA variants."""
    counters = {"benign": 0, "malignant": 0, "normal": 0}
    for index in range(n_cases):
        cls = ("benign", "malignant", "normal")[index % 3]
        counters[cls] += 1
        case, folder = f"{cls} ({counters[cls]})", root / "Dataset_BUSI_with_GT" / cls
        image, instances = blob_case(rng, _size(rng, size, 8), max_blobs=1 if cls == "normal" else 2)
        if cls == "normal":
            instances[:] = 0
        write_image_atomic(folder / f"{case}.png", _rgb(image, instances, tint=False))
        if cls == "normal":  # normal masks are 8-bit RGB, all zero
            write_image_atomic(folder / f"{case}_mask.png", np.zeros((*instances.shape, 3), np.uint8))
            continue
        masks = [instances == 1]
        if counters[cls] == 2:  # an extra lesion in _mask_1.png
            extra = np.zeros_like(masks[0])
            extra[: extra.shape[0] // 6, : extra.shape[1] // 6] = True
            masks.append(extra)
        for k, mask in enumerate(masks):
            name = f"{case}_mask.png" if k == 0 else f"{case}_mask_{k}.png"
            grey = mask.astype(np.uint8) * 255
            if counters[cls] == 3:  # RGBA with opaque alpha, as in the real release
                write_image_atomic(folder / name, np.dstack([grey, grey, grey, np.full_like(grey, 255)]))
            elif counters[cls] == 4:
                write_image_atomic(folder / name, np.dstack([grey] * 3))
            else:
                write_image_atomic(folder / name, grey, BILEVEL)


def _glas(root: Path, n_cases: int, rng: np.random.Generator, size: int = 64) -> None:
    """Official GlaS layout: BMP images with ``_anno.bmp`` instance label maps and Grade.csv."""
    folder = root / "Warwick QU Dataset (Released 2016_07_08)"
    n_train, n_test_a = max(1, n_cases // 2), max(1, (n_cases * 7) // 20)
    names = [f"train_{k + 1}" for k in range(n_train)] + [f"testA_{k + 1}" for k in range(n_test_a)]
    names += [f"testB_{k + 1}" for k in range(max(1, n_cases - len(names)))]
    rows = ["name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)"]
    for name in names:
        image, instances = blob_case(rng, (size, int(size * 1.5)))
        write_image_atomic(folder / f"{name}.bmp", _rgb(image, instances))
        write_image_atomic(folder / f"{name}_anno.bmp", instances.astype(np.uint8))
        rows.append(f"{name},1, {'benign' if rng.random() < 0.5 else 'malignant'},adenomatous")
    (folder / "Grade.csv").write_text("\n".join(rows) + "\n")


def _cvc(root: Path, n_cases: int, rng: np.random.Generator, size: int = 48, fmt: str = "tif") -> None:
    """Official CVC layout (``fmt="tif"``, grey masks) or its PNG mirror (RGB masks); grey mask edges."""
    for k in range(1, n_cases + 1):
        image, instances = blob_case(rng, (size * 3 // 4, size))
        mask = (instances > 0).astype(np.uint8) * 255
        ring = cv2.dilate(mask, np.ones((3, 3), np.uint8)) > mask
        mask[ring] = 90  # anti-aliased edge below the > 127 threshold
        write_image_atomic(root / "Original" / f"{k}.{fmt}", _rgb(image, instances))
        write_image_atomic(root / "Ground Truth" / f"{k}.{fmt}", np.dstack([mask] * 3) if fmt == "png" else mask)


def _ukan(root: Path, n_cases: int, rng: np.random.Generator, size: int = 48, mask_suffix: str = "",
          ids: list[str] | None = None) -> None:
    """U-KAN layout: ``images/<id>.png`` + ``masks/0/<id><mask_suffix>.png`` (0/255 grey)."""
    for case in ids or [str(k) for k in range(1, n_cases + 1)]:
        image, instances = blob_case(rng, (size, size))
        write_image_atomic(root / "images" / f"{case}.png", _rgb(image, instances))
        write_image_atomic(root / "masks" / "0" / f"{case}{mask_suffix}.png", (instances > 0).astype(np.uint8) * 255)


def _splits(ids: list[str]) -> dict:
    n_val = n_test = max(1, len(ids) // 5)
    n_train = len(ids) - n_val - n_test
    return {"default": {"train": ids[:n_train], "val": ids[n_train:n_train + n_val], "test": ids[n_train + n_val:],
                        "note": "synthetic: fixed 60/20/20 split"}}


def _decathlon2d(root: Path, n_cases: int, rng: np.random.Generator, size: int = 64, style: str = "decathlon") -> None:
    """2D dataset.json: Decathlon (``training`` list) or nnU-Net v2 (``imagesTr/<id>_0000.png``) style."""
    ids = [f"case_{k:03d}" for k in range(n_cases)]
    for case in ids:
        image, instances = blob_case(rng, (size, size))
        image_name = f"{case}_0000.png" if style == "nnunet" else f"{case}.png"
        write_image_atomic(root / "imagesTr" / image_name, _rgb(image, instances))
        write_image_atomic(root / "labelsTr" / f"{case}.png", (instances > 0).astype(np.uint8))
    if style == "nnunet":
        meta = {"channel_names": {"0": "R", "1": "G", "2": "B"}, "labels": {"background": 0, "blob": 1},
                "numTraining": n_cases, "file_ending": ".png"}
    else:
        meta = {"modality": {"0": "RGB"}, "labels": {"0": "background", "1": "blob"}, "numTraining": n_cases,
                "training": [{"image": f"./imagesTr/{c}.png", "label": f"./labelsTr/{c}.png"} for c in ids]}
    _write_json(root / "dataset.json", {"name": "synthetic-2d", **meta, "kanseg_splits": _splits(ids)})


def _nifti3d(root: Path, n_cases: int, rng: np.random.Generator, shape: tuple[int, int, int] = (24, 24, 16),
             spacing: tuple[float, float, float] = (1.0, 1.0, 2.0)) -> None:
    """Decathlon-style 3D NIfTI dataset (``imagesTr`` / ``labelsTr`` ``.nii.gz``, MRI-like intensities)."""
    import nibabel as nib

    ids = [f"vol_{k:03d}" for k in range(n_cases)]
    affine = np.diag([*spacing, 1.0])
    for case in ids:
        image, instances = blob_case(rng, tuple(shape), max_blobs=2)
        for folder, array in (("imagesTr", image * 1000.0), ("labelsTr", (instances > 0).astype(np.uint8))):
            path = root / folder / f"{case}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(array, affine), str(path))
    _write_json(root / "dataset.json", {
        "name": "synthetic-3d", "modality": {"0": "MRI"}, "labels": {"0": "background", "1": "blob"},
        "numTraining": n_cases, "kanseg_splits": _splits(ids),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
    })


def multiclass_case(rng: np.random.Generator, shape: tuple[int, ...], n_classes: int = 3
                    ) -> tuple[np.ndarray, np.ndarray]:
    """Image float32 ``(*shape)`` and class-index map uint8: one ellipse / ellipsoid per foreground class,
    each class a different brightness (class k adds ``0.3 * k``), later classes drawn over earlier ones."""
    grids = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    classes = np.zeros(shape, dtype=np.uint8)
    for k in range(1, n_classes):
        centre = [rng.uniform(0.3 * s, 0.7 * s) for s in shape]
        radii = [rng.uniform(0.15 * s, 0.25 * s) for s in shape]
        classes[sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii)) <= 1.0] = k
    background = rng.normal(0.2, 0.05, size=[max(2, s // 8) for s in shape]).astype(np.float32)
    image = _upsample(background, shape) + rng.normal(0, 0.03, size=shape).astype(np.float32)
    return image + 0.3 * classes.astype(np.float32), classes


def _label_map(label_values, style: str) -> dict:
    names = CLASS_NAMES[: len(label_values)]
    if style == "nnunet":
        return {name: int(v) for name, v in zip(names, label_values)}
    return {str(int(v)): name for name, v in zip(names, label_values)}


def _multiclass2d(root: Path, n_cases: int, rng: np.random.Generator, size: int = 48,
                  label_values: tuple[int, ...] = (0, 1, 2), style: str = "nnunet") -> None:
    """2D multi-class dataset (grey PNG images, label PNGs holding ``label_values``), sizes vary +-8."""
    ids = [f"case_{k:03d}" for k in range(n_cases)]
    lookup = np.asarray(label_values, dtype=np.uint8)
    for case in ids:
        image, classes = multiclass_case(rng, _size(rng, size, 8), len(label_values))
        grey = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
        write_image_atomic(root / "imagesTr" / f"{case}_0000.png", grey)
        write_image_atomic(root / "labelsTr" / f"{case}.png", lookup[classes])
    _write_json(root / "dataset.json", {
        "name": "synthetic-multiclass-2d", "channel_names": {"0": "grey"}, "labels": _label_map(label_values, style),
        "numTraining": n_cases, "file_ending": ".png", "kanseg_splits": _splits(ids)})


def synthetic_affine(rng: np.random.Generator, spacing: tuple[float, ...], index: int) -> np.ndarray:
    """A non-identity voxel-to-world affine: axis permutation and flips cycling with ``index``, the
    spacing jittered by up to 20%, a random origin."""
    permutation = [(0, 1, 2), (1, 0, 2), (0, 2, 1), (2, 1, 0)][index % 4]
    signs = [(1, 1, 1), (-1, -1, 1), (1, -1, -1), (-1, 1, 1)][(index // 2) % 4]
    affine = np.zeros((4, 4))
    for axis in range(3):
        affine[permutation[axis], axis] = signs[axis] * spacing[axis] * rng.uniform(0.8, 1.2)
    affine[:3, 3] = rng.uniform(-50, 50, size=3)
    affine[3, 3] = 1.0
    return affine


def _multiclass3d(root: Path, n_cases: int, rng: np.random.Generator, shape: tuple[int, int, int] = (20, 22, 14),
                  spacing: tuple[float, float, float] = (1.0, 1.0, 1.5), label_values: tuple[int, ...] = (0, 1, 2),
                  style: str = "decathlon", modality: str = "MRI", vary: int = 4) -> None:
    """Decathlon-style multi-class NIfTI dataset: sizes vary by +-``vary``, non-identity affines
    (:func:`synthetic_affine`), labels stored as ``label_values`` (uint8), MRI- or CT-like intensities."""
    import nibabel as nib

    ids = [f"mc_{k:03d}" for k in range(n_cases)]
    lookup = np.asarray(label_values, dtype=np.uint8)
    scale, offset = (1000.0, -500.0) if modality == "CT" else (800.0, 0.0)
    for index, case in enumerate(ids):
        case_shape = tuple(int(s + rng.integers(-vary, vary + 1)) for s in shape)
        image, classes = multiclass_case(rng, case_shape, len(label_values))
        affine = synthetic_affine(rng, spacing, index)
        for folder, array in (("imagesTr", (image * scale + offset).astype(np.float32)), ("labelsTr", lookup[classes])):
            path = root / folder / f"{case}.nii.gz"
            path.parent.mkdir(parents=True, exist_ok=True)
            nib.save(nib.Nifti1Image(array, affine), str(path))
    _write_json(root / "dataset.json", {
        "name": "synthetic-multiclass-3d", "modality": {"0": modality}, "labels": _label_map(label_values, style),
        "numTraining": n_cases, "kanseg_splits": _splits(ids),
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in ids],
    })


def _write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1))


_WRITERS: dict[str, Callable] = {"busi": _busi, "glas": _glas, "cvc": _cvc, "ukan": _ukan,
                                 "decathlon2d": _decathlon2d, "nifti3d": _nifti3d,
                                 "multiclass2d": _multiclass2d, "multiclass3d": _multiclass3d}


def generate_synthetic(layout: str, root: str | os.PathLike, n_cases: int = 12, seed: int = 0, **kw) -> Path:
    """Write ``n_cases`` synthetic cases in ``layout`` under ``root`` (absent or empty) and return ``root``.

    Layouts: busi, glas, cvc (``fmt="tif"|"png"``), ukan (``mask_suffix``, ``ids``), decathlon2d
    (``style="decathlon"|"nnunet"``), nifti3d (``shape``, ``spacing``), multiclass2d (``size``,
    ``label_values``, ``style``), multiclass3d (``shape``, ``spacing``, ``label_values``, ``style``,
    ``modality``, ``vary``); 2D layouts take ``size``.
    Deterministic in ``seed``. Written in a temporary sibling folder and renamed into place, so an
    interrupted run never leaves a half-written dataset.
    """
    if layout not in _WRITERS:
        raise KansegError(f"unknown synthetic layout {layout!r}; valid: {', '.join(LAYOUTS)}")
    root = Path(root)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise KansegError(f"{root} already exists and is not empty; choose a new folder")
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        _WRITERS[layout](tmp, n_cases, np.random.default_rng(seed), **kw)
        if root.exists():
            root.rmdir()
        os.replace(tmp, root)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root
