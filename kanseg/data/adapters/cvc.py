"""CVC-ClinicDB (colonoscopy frames; Bernal et al. 2015)."""

from __future__ import annotations

from pathlib import Path

from kanseg.data.adapters.base import DatasetAdapter, list_files
from kanseg.data.cases import Case
from kanseg.data.io import IMAGE_2D_SUFFIXES

GROUND_TRUTH_FOLDERS = ("Ground Truth", "GroundTruth", "Ground_Truth")


class CVCClinicDB(DatasetAdapter):
    """``Original/N.tif`` + ``Ground Truth/N.tif`` (official) or the same in PNG (RGB masks).

    Masks have grey edge pixels: foreground is ``> 127`` in any channel.
    """

    name = "cvc"
    title = "CVC-ClinicDB"
    source_url = "https://polyp.grand-challenge.org/CVCClinicDB/"
    official_layout = "Original/N.tif|png with 'Ground Truth'/N.tif|png"
    mask_threshold = 127

    def official_cases(self, base: Path) -> list[Case]:
        truth = next((base / f for f in GROUND_TRUTH_FOLDERS if (base / f).is_dir()), None)
        images = [p for p in list_files(base / "Original") if p.suffix.lower() in IMAGE_2D_SUFFIXES]
        if truth is None or not images:
            return []
        masks = {p.stem: p for p in list_files(truth) if p.suffix.lower() in IMAGE_2D_SUFFIXES}
        return [Case(p.stem, (p,), (masks.get(p.stem, truth / p.name),)) for p in images]
