"""Checks of a ``dataset.json`` before any case is built: one :class:`KansegError` line per problem.

Every message names the file and the entry (``training[3]``, ``labels``, ``kanseg_splits.default.val``)
and says what is wrong, so a malformed file never ends in a traceback. Both label-map forms are read:
Decathlon (``{"0": "background", "1": "tumour"}``, values -> names) and nnU-Net v2
(``{"background": 0, "tumour": 1}``, names -> values, a value may be a list of values for regions).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from kanseg.errors import KansegError

LABEL_FORMS = '{"0": "background", "1": "tumour"} (Decathlon) or {"background": 0, "tumour": 1} (nnU-Net v2)'


def dataset_json_path(path: str | os.PathLike) -> Path:
    """The ``dataset.json`` of a dataset folder (or the file itself); one-line error when there is none."""
    path = Path(path)
    json_path = path / "dataset.json" if path.is_dir() else path
    if not json_path.is_file():
        raise KansegError(f"no dataset.json at {path} (expected a Decathlon / nnU-Net style dataset folder)")
    return json_path


def _type(value: Any) -> str:
    names = {dict: "object", list: "list", str: "string", type(None): "null"}
    return names.get(type(value), type(value).__name__)


def _inside(root: Path, relative: str) -> bool:
    """Lexically inside ``root`` (symbolic links in the folder may point anywhere)."""
    folder = os.path.abspath(root)
    return os.path.commonpath([os.path.abspath(root / relative), folder]) == folder


def _check_path(json_path: Path, where: str, key: str, value: Any) -> None:
    if not isinstance(value, str) or not value.strip():
        raise KansegError(f"{json_path}: {where} {key!r} must be a file path (string), got {_type(value)} {value!r}")
    if not _inside(json_path.parent, value):
        raise KansegError(f"{json_path}: {where} {key!r} path {value!r} points outside the dataset folder "
                          f"{json_path.parent}")


def _check_training(json_path: Path, entries: Any) -> None:
    if not isinstance(entries, list):
        raise KansegError(f"{json_path}: 'training' must be a list of {{\"image\": ..., \"label\": ...}} entries, "
                          f"got {_type(entries)}")
    for index, entry in enumerate(entries):
        where = f"training[{index}]"
        if not isinstance(entry, dict):
            raise KansegError(f"{json_path}: {where} must be an object with \"image\" and \"label\", "
                              f"got {_type(entry)} {entry!r}")
        if "image" not in entry:
            raise KansegError(f"{json_path}: {where} has no \"image\" (keys: {', '.join(map(repr, entry)) or 'none'})")
        images = entry["image"]
        if isinstance(images, list):
            if not images:
                raise KansegError(f"{json_path}: {where} 'image' is an empty list")
            for channel, image in enumerate(images):
                _check_path(json_path, f"{where}", f"image[{channel}]", image)
        else:
            _check_path(json_path, where, "image", images)
        if entry.get("label") is not None:
            _check_path(json_path, where, "label", entry["label"])


def label_values(labels: Any, json_path: Path) -> dict[int, str]:
    """The label map of either form as ``{value: name}``; an error line if it is neither."""
    if not isinstance(labels, dict) or not labels:
        raise KansegError(f"{json_path}: 'labels' must be a non-empty object like {LABEL_FORMS}, got {_type(labels)}")
    decathlon = all(isinstance(k, str) and k.strip().lstrip("-").isdigit() for k in labels)
    out: dict[int, str] = {}
    for key, value in labels.items():
        if decathlon:
            if not isinstance(value, str):
                raise KansegError(f"{json_path}: labels[{key!r}] must be a class name, got {_type(value)} {value!r}; "
                                  f"expected {LABEL_FORMS}")
            pairs = [(int(key), value)]
        else:
            values = value if isinstance(value, list) else [value]
            if not values or not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
                raise KansegError(f"{json_path}: labels[{key!r}] must be an integer label value, got "
                                  f"{_type(value)} {value!r}; expected {LABEL_FORMS}")
            pairs = [(v, key) for v in values]
        region = not decathlon and isinstance(value, list)  # nnU-Net regions may share values
        for number, name in pairs:
            if number in out and not region:
                raise KansegError(f"{json_path}: labels give value {number} twice ({out[number]!r} and {name!r})")
            out.setdefault(number, name)
    if 0 not in out:
        raise KansegError(f"{json_path}: 'labels' has no background class (value 0): {labels}")
    return out


def _check_splits(json_path: Path, splits: Any) -> None:
    if not isinstance(splits, dict):
        raise KansegError(f"{json_path}: 'kanseg_splits' must be an object of named splits, got {_type(splits)}")
    for name, split in splits.items():
        if not isinstance(split, dict):
            raise KansegError(f"{json_path}: kanseg_splits.{name} must be an object of subsets "
                              f"(train / val / test lists), got {_type(split)}")
        for subset, ids in split.items():
            if subset != "note" and not (isinstance(ids, list) and all(isinstance(i, str) for i in ids)):
                raise KansegError(f"{json_path}: kanseg_splits.{name}.{subset} must be a list of case ids, "
                                  f"got {_type(ids)}")


def check_dataset_json(meta: Any, json_path: Path) -> None:
    """Structure, types and paths of a parsed ``dataset.json`` (cheap: no image is opened)."""
    if not isinstance(meta, dict):
        raise KansegError(f"{json_path} must hold a JSON object, got {_type(meta)}")
    if "training" in meta and meta["training"] is not None:
        _check_training(json_path, meta["training"])
    if meta.get("file_ending") is not None:
        ending = meta["file_ending"]
        if not isinstance(ending, str) or not ending.startswith("."):
            raise KansegError(f"{json_path}: 'file_ending' must be a suffix like \".nii.gz\", "
                              f"got {_type(ending)} {ending!r}")
    if "labels" in meta:
        label_values(meta["labels"], json_path)
    for key in ("modality", "channel_names"):
        if key in meta and not isinstance(meta[key], dict):
            raise KansegError(f"{json_path}: {key!r} must be an object like {{\"0\": \"CT\"}}, got {_type(meta[key])}")
    if "kanseg_splits" in meta:
        _check_splits(json_path, meta["kanseg_splits"])


def check_cases(json_path: Path, ids: list[str], sources: list[str], splits: dict) -> None:
    """Case ids are unique (``sources``: the first image of each case, for the message) and the
    explicit splits name only known cases."""
    seen: dict[str, str] = {}
    for case_id, source in zip(ids, sources):
        if case_id in seen:
            raise KansegError(f"{json_path}: duplicate case id {case_id!r} ({seen[case_id]} and {source}); "
                              "every training entry needs its own image file name")
        seen[case_id] = source
    for name, split in splits.items():
        for subset, members in split.items():
            unknown = [i for i in members if i not in seen] if subset != "note" else []
            if unknown:
                raise KansegError(f"{json_path}: kanseg_splits.{name}.{subset} names {len(unknown)} unknown case(s), "
                                  f"first {unknown[0]!r}")


def dataset_labels(name_or_path: str | os.PathLike, root: Path) -> dict[int, str] | None:
    """The ``{value: name}`` label map of the dataset.json at ``name_or_path`` (or in ``root``), None if it has none."""
    import json

    path = Path(name_or_path)
    json_path = path if path.is_file() else root / "dataset.json"
    try:
        meta = json.loads(json_path.read_text())
    except (OSError, ValueError):
        return None
    return label_values(meta["labels"], json_path) if isinstance(meta, dict) and "labels" in meta else None
