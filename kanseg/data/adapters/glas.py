"""GlaS (MICCAI 2015 gland segmentation challenge, Warwick-QU)."""

from __future__ import annotations

import re
from pathlib import Path

from kanseg.data.adapters.base import DatasetAdapter, list_files
from kanseg.data.cases import Case

SUBSETS = ("train", "testA", "testB")
_IMAGE = re.compile(r"^(?P<id>(?P<subset>train|testA|testB)_\d+)\.bmp$")


class GlaS(DatasetAdapter):
    """``train_N.bmp`` / ``testA_N.bmp`` / ``testB_N.bmp`` with ``<name>_anno.bmp`` instance maps.

    Annotations are instance label maps (0 = background, 1..n = glands), binarised with ``> 0``.
    """

    name = "glas"
    title = "GlaS"
    source_url = "https://warwick.ac.uk/fac/cross_fac/tia/data/glascontest/"
    official_layout = "<folder>/{train,testA,testB}_N.bmp with <name>_anno.bmp (+ Grade.csv)"
    image_size = (512, 512)

    def official_cases(self, base: Path) -> list[Case]:
        cases = []
        for path in list_files(base):
            if match := _IMAGE.match(path.name):
                label = path.with_name(f"{match['id']}_anno.bmp")
                cases.append(Case(match["id"], (path,), (label,), match["subset"]))
        return cases

    def group_of(self, case_id: str) -> str:
        prefix = case_id.split("_")[0]
        return prefix if prefix in SUBSETS else ""
