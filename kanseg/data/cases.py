"""What a dataset is before any pixels are read: cases (file paths) and named splits.

Adapters (official layouts) and ``dataset.json`` readers all produce a :class:`DatasetSource`;
:func:`kanseg.data.build_dataset` turns one split/subset of it into a ``SegmentationDataset``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kanseg.errors import KansegError

ALL_SPLIT = "all"  # every case present in the copy, whatever the subset


@dataclass(frozen=True)
class Case:
    """One image and its ground truth on disk.

    ``image`` holds one path per channel file (usually one); ``label`` holds the mask file(s),
    OR-merged when several (BUSI's ``_mask_1``), empty when the case has no ground truth.
    ``group`` is a dataset-specific tag (BUSI class, GlaS official subset).
    """

    id: str
    image: tuple[Path, ...]
    label: tuple[Path, ...] = ()
    group: str = ""

    def missing_files(self) -> list[Path]:
        return [p for p in (*self.image, *self.label) if not p.is_file()]


@dataclass
class DatasetSource:
    """Cases found under a root, their named splits and the facts preprocessing needs."""

    name: str
    root: Path
    cases: dict[str, Case]
    splits: dict[str, dict[str, Any]]  # split -> {"train": [ids], "val": [...], "test": [...], "note": str}
    default_split: str
    spatial_dims: int = 2
    in_channels: int = 3
    intensity: dict[str, Any] = field(default_factory=dict)
    image_size: tuple[int, ...] | None = None
    mask_threshold: float = 0
    classes: tuple[str, ...] = ()  # multi-class only: names in label order, background first
    label_values: tuple[int, ...] = ()  # multi-class only: the stored value of each class
    modalities: tuple[str, ...] = ()  # per channel, from dataset.json ("MRI", "CT", ...)

    def split_names(self) -> list[str]:
        return sorted(self.splits) + list(getattr(self.splits, "patterns", ())) + [ALL_SPLIT]

    def subset_ids(self, split: str | None, subset: str) -> list[str]:
        """Case ids of ``subset`` in ``split`` (``None`` = the default split), in split order."""
        split = split or self.default_split
        if split == ALL_SPLIT:
            return list(self.cases)
        if split not in self.splits:
            raise KansegError(f"unknown split {split!r} for {self.name}; valid: {', '.join(self.split_names())}")
        entry = self.splits[split]
        subsets = [k for k, v in entry.items() if isinstance(v, list)]
        if subset not in subsets:
            raise KansegError(f"split {split!r} of {self.name} has no subset {subset!r}; valid: {', '.join(subsets)}")
        ids = list(entry[subset])
        missing = [i for i in ids if i not in self.cases]
        if missing:
            raise KansegError(
                f"{len(missing)} of {len(ids)} cases of {self.name} split {split!r}/{subset} are not under "
                f"{self.root} (first: {missing[0]!r}); run `kanseg data verify --dataset {self.name} "
                f"--data-root {self.root}` or use --split {ALL_SPLIT}"
            )
        return ids
