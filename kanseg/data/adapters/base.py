"""Adapter base: find a dataset's cases in its official release layout or the U-KAN layout."""

from __future__ import annotations

import os
from pathlib import Path

from kanseg.data.cases import Case, DatasetSource
from kanseg.data.io import IMAGE_2D_SUFFIXES
from kanseg.data.manifests import load_manifest, manifest_splits
from kanseg.errors import KansegError

DATA_ROOT_ENV = "KANSEG_DATA_ROOT"


def list_files(folder: Path) -> list[Path]:
    """Plain files of a folder (not recursive), sorted by name; [] when it does not exist."""
    if not folder.is_dir():
        return []
    return sorted((p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")), key=lambda p: p.name)


def ukan_cases(base: Path, mask_suffix: str) -> list[Case]:
    """U-KAN layout: ``<base>/images/<id>.png`` with ``<base>/masks/0/<id><mask_suffix>.png``."""
    images = [p for p in list_files(base / "images") if p.suffix.lower() in IMAGE_2D_SUFFIXES]
    cases = []
    for image in images:
        mask = base / "masks" / "0" / f"{image.stem}{mask_suffix}{image.suffix}"
        cases.append(Case(image.stem, (image,), (mask,)))
    return cases


class DatasetAdapter:
    """Reads one benchmark dataset. Subclasses set the facts and implement :meth:`official_cases`."""

    name = ""
    title = ""
    source_url = ""
    official_layout = ""  # one line: what kanseg expects under --data-root
    ukan_mask_suffix = ""
    mask_threshold: float = 0
    image_size: tuple[int, ...] = (256, 256)
    in_channels = 3
    optional_groups: tuple[str, ...] = ()  # groups left out unless asked for (BUSI's normal class)

    def official_cases(self, base: Path) -> list[Case]:
        """Cases of the official layout found directly under ``base`` ([] if not this layout)."""
        raise NotImplementedError

    def group_of(self, case_id: str) -> str:
        """Group tag of a case id (used for U-KAN layout cases, which carry no folder structure)."""
        return ""

    def missing_message(self, root: Path | None) -> str:
        where = f"not found under {root}" if root else f"needs --data-root (or ${DATA_ROOT_ENV}/{self.name})"
        return (f"{self.title} {where}: expected the official layout {self.official_layout} or the U-KAN layout "
                f"images/<id>.png + masks/0/<id>{self.ukan_mask_suffix}.png; download it from {self.source_url}")

    def resolve_root(self, root: str | os.PathLike | None) -> Path:
        """``root`` (default ``$KANSEG_DATA/<name>``) if it is a folder; the one-line missing message otherwise."""
        if root is None and os.environ.get(DATA_ROOT_ENV):
            root = Path(os.environ[DATA_ROOT_ENV]) / self.name
        if root is None or not Path(root).is_dir():
            raise KansegError(self.missing_message(Path(root) if root else None))
        return Path(root)

    def find_cases(self, root: str | os.PathLike | None) -> tuple[Path, list[Case]]:
        """Locate the layout at ``root`` or one folder below it; return (dataset folder, cases)."""
        root = self.resolve_root(root)
        for base in [root, *(p for p in sorted(root.iterdir()) if p.is_dir())]:
            cases = self.official_cases(base)
            if not cases:
                cases = [Case(c.id, c.image, c.label, self.group_of(c.id))
                         for c in ukan_cases(base, self.ukan_mask_suffix)]
            if cases:
                return base, cases
        raise KansegError(self.missing_message(root))

    def open(self, root: str | os.PathLike | None, *, include_optional: bool = False) -> DatasetSource:
        """Cases under ``root`` with the manifest's splits; optional groups only if asked for."""
        from kanseg.data.transforms import rgb_intensity  # MONAI: only once a dataset is really opened

        base, cases = self.find_cases(root)
        extra = self.optional_groups if include_optional else ()
        cases = [c for c in cases if c.group not in self.optional_groups or c.group in extra]
        manifest = load_manifest(self.name)
        return DatasetSource(
            name=self.name,
            root=base,
            cases={c.id: c for c in cases},
            splits=manifest_splits(manifest, include_extra=extra),
            default_split=manifest.get("default_split", "clean"),
            spatial_dims=2,
            in_channels=self.in_channels,
            intensity=rgb_intensity(self.in_channels),
            image_size=self.image_size,
            mask_threshold=self.mask_threshold,
        )
