"""Which datasets exist, decided without reading pixels or importing MONAI / torch.

:func:`dataset_kind` names the kind of a ``--dataset`` value and :func:`check_dataset` fails fast on an
unknown name or a missing ``--data-root``, so the command line reports bad input in well under a second;
:func:`kanseg.data.build.open_source` then opens the dataset through the same decision.
"""

from __future__ import annotations

import os
from pathlib import Path

from kanseg.data.adapters import ADAPTERS
from kanseg.data.dataset_json import dataset_json_path
from kanseg.data.manifests import load_manifest, manifest_dir
from kanseg.data.splits import N_FOLDS
from kanseg.errors import KansegError

DEMO = "demo"
DATASETS = (*sorted(ADAPTERS), DEMO)  # names accepted besides a dataset.json path


def is_dataset_json_manifest(name: str) -> bool:
    """A shipped manifest of a dataset read through its dataset.json (not one of the adapters)."""
    return (name not in ADAPTERS and name.isidentifier() and (manifest_dir() / f"{name}.json").is_file()
            and "dataset.json" in load_manifest(name).get("layout", ""))


def dataset_kind(name: str | os.PathLike) -> str:
    """``"demo"``, ``"adapter"`` (busi, glas, cvc), ``"manifest"`` (a shipped dataset.json manifest such as
    hippocampus) or ``"path"`` (a dataset.json file or its folder); :class:`KansegError` for anything else."""
    name = str(name)
    if name == DEMO:
        return "demo"
    if name in ADAPTERS:
        return "adapter"
    if is_dataset_json_manifest(name):
        return "manifest"
    path = Path(name)
    if path.suffix == ".json" or (path / "dataset.json").is_file():
        return "path"
    raise KansegError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}, or a path to a dataset.json")


def manifest_data_root(name: str, data_root: str | os.PathLike | None) -> Path:
    """``--data-root`` of a shipped dataset.json manifest (hippocampus), which has no default location."""
    if data_root is None:
        raise KansegError(f"dataset {name} needs --data-root: the folder holding its dataset.json "
                          f"({load_manifest(name).get('layout', '')})")
    return Path(data_root)


def check_dataset(name: str | os.PathLike, data_root: str | os.PathLike | None = None) -> None:
    """Raise the one-line :class:`KansegError` that opening ``name`` at ``data_root`` would raise for an unknown
    name or a missing folder / dataset.json (the layout inside an existing folder is checked when opened)."""
    kind = dataset_kind(name)
    if kind == "adapter":
        ADAPTERS[str(name)].resolve_root(data_root)
    elif kind == "manifest":
        dataset_json_path(manifest_data_root(str(name), data_root))
    elif kind == "path":
        dataset_json_path(name)


def fold_split(name: str | os.PathLike, fold: int) -> str:
    """The split name of cross-validation fold ``fold`` of a dataset's default split: ``clean-fold<k>`` (busi,
    glas, cvc), ``<manifest>:clean-fold<k>`` (hippocampus), ``fold<k>`` (demo and dataset.json datasets)."""
    if not 0 <= fold < N_FOLDS:
        raise KansegError(f"--fold must be 0..{N_FOLDS - 1}, got {fold}")
    kind = dataset_kind(name)
    if kind in ("adapter", "manifest"):
        split = f"{load_manifest(str(name)).get('default_split', 'clean')}-fold{fold}"
        return split if kind == "adapter" else f"{name}:{split}"
    return f"fold{fold}"
