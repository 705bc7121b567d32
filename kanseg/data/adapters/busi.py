"""BUSI (breast ultrasound; Al-Dhabyani et al., Data in Brief 2020)."""

from __future__ import annotations

import re
from pathlib import Path

from kanseg.data.adapters.base import DatasetAdapter, list_files
from kanseg.data.cases import Case

CLASSES = ("benign", "malignant", "normal")
_IMAGE = re.compile(r"^(?P<id>(?P<cls>benign|malignant|normal) \(\d+\))\.png$", re.IGNORECASE)
_MASK = re.compile(r"^(?P<id>.+ \(\d+\))_mask(_\d+)?\.png$", re.IGNORECASE)


class BUSI(DatasetAdapter):
    """``Dataset_BUSI_with_GT/<class>/<class> (N).png`` + ``_mask.png`` (+ ``_mask_1/_2``, OR-merged).

    Masks may be 1-bit, 8-bit RGB or RGBA: foreground is any colour channel > 0. The normal
    class (empty masks) is left out unless ``include_normal`` (the papers' 647-case subset).
    """

    name = "busi"
    title = "BUSI"
    source_url = "https://scholar.cu.edu.eg/?q=afahmy/pages/dataset"
    official_layout = "Dataset_BUSI_with_GT/{benign,malignant,normal}/<class> (N).png with <class> (N)_mask[_K].png"
    ukan_mask_suffix = "_mask"
    optional_groups = ("normal",)

    def official_cases(self, base: Path) -> list[Case]:
        folder = base  # Dataset_BUSI_with_GT itself (found at --data-root or one level below)
        cases = []
        for cls in CLASSES:
            files = list_files(folder / cls)
            masks: dict[str, list[Path]] = {}
            for path in files:
                if match := _MASK.match(path.name):
                    masks.setdefault(match["id"], []).append(path)
            for path in files:
                if match := _IMAGE.match(path.name):
                    case_id = match["id"]
                    label = tuple(sorted(masks.get(case_id, []), key=lambda p: (len(p.name), p.name)))
                    # An image without mask keeps the expected path, so loading names it.
                    cases.append(Case(case_id, (path,), label or (folder / cls / f"{case_id}_mask.png",), cls))
        return cases

    def group_of(self, case_id: str) -> str:
        return case_id.split(" (")[0].lower()
