"""Dataset manifests: ``data_manifests/<name>.json`` (written by ``scripts/make_manifests.py``).

Schema (``format == "kanseg-manifest-v1"``)::

    {"name": "busi", "title": ..., "source": {...}, "licence": ..., "citation": ...,
     "layout": "one line", "counts": {"cases": 780, ...},
     "cases": [{"id": "benign (4)", "group": "benign", "height": 465, "width": 555,
                "files": {"benign/benign (4).png": "<sha256>|null", "benign/benign (4)_mask.png": ...}}],
     "default_split": "clean",
     "splits": {"legacy-2981": {"train": [ids], "val": [ids], "test": [ids], "note": "...",
                                "extra": {"normal": {"train": [...], "val": [...], "test": [...]}}}}}

Paths in ``files`` are relative to the dataset folder of the official layout (CVC lists both its
TIF and PNG variants). Split lists are explicit ids in loader order, never seeds.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from kanseg.errors import KansegError

FORMAT = "kanseg-manifest-v1"
#: the repository's data_manifests/ (an editable install, as in the README); ``$KANSEG_MANIFESTS`` overrides it,
#: e.g. for a wheel install next to a copy of that folder.
MANIFEST_DIR = Path(__file__).resolve().parents[2] / "data_manifests"


def manifest_dir() -> Path:
    """Where manifests are read from: ``$KANSEG_MANIFESTS`` if set, else the repository's ``data_manifests/``."""
    return Path(os.environ.get("KANSEG_MANIFESTS") or MANIFEST_DIR)


@lru_cache(maxsize=None)
def _read(path: Path) -> dict[str, Any]:
    try:
        manifest = json.loads(path.read_text())
    except FileNotFoundError:
        raise KansegError(f"manifest {path} is missing; point $KANSEG_MANIFESTS at kanseg's data_manifests/ folder "
                          f"or regenerate it with scripts/make_manifests.py")
    except (OSError, json.JSONDecodeError) as err:
        raise KansegError(f"cannot read manifest {path}: {err}")
    if manifest.get("format") != FORMAT:
        raise KansegError(f"{path} is not a kanseg manifest (expected format {FORMAT!r})")
    return manifest


def load_manifest(name: str) -> dict[str, Any]:
    """The manifest of dataset ``name`` (busi, glas, cvc) as a dict (cached; do not mutate)."""
    return _read(manifest_dir() / f"{name}.json")


def manifest_splits(manifest: dict[str, Any], include_extra: tuple[str, ...] = ()) -> dict[str, dict[str, Any]]:
    """Named splits as ``{split: {subset: [ids], "note": str}}``, extra groups merged in when asked."""
    splits = {}
    for split, entry in manifest["splits"].items():
        resolved = {k: list(v) for k, v in entry.items() if isinstance(v, list)}
        for group in include_extra:
            for subset, ids in entry.get("extra", {}).get(group, {}).items():
                resolved.setdefault(subset, []).extend(ids)
        resolved["note"] = entry.get("note", "")
        splits[split] = resolved
    return splits
