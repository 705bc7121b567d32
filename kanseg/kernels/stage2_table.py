"""When the implicit-GEMM conv (stage 2) replaces expand + cuDNN (stage 1): a measured table, never a guess.

``stage2_table.json`` (next to this file) holds fwd+bwd times of the basis branch for both stages, per GPU name and
layer shape; ``benchmarks/kernels.py --stage2-table`` measures and rewrites it. Stage 2 is chosen for a layer only
when the table has a row for the same GPU and layer (family, dims, dtype, channels, kernel, stride, dilation, groups)
whose size (batch × voxels) is within 2× of the layer's, and stage 2 was faster there. No row: stage 1.
No triton import here (the dispatcher reads it on every call).
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from kanseg.kernels.recurrences import recurrence_names

#: families with hand-written implicit-GEMM kernels (``kanseg.kernels.implicit_gemm_basis.STAGE2_BASES``).
STAGE2_HANDWRITTEN = ("rbf",)


def stage2_family_names() -> tuple[str, ...]:
    """Families with implicit-GEMM kernels: the hand-written ones and every registered three-term recurrence."""
    return tuple(sorted({*STAGE2_HANDWRITTEN, *recurrence_names()}))


#: :func:`stage2_family_names` at import (a recurrence registered later is only in the function's answer).
STAGE2_FAMILIES = stage2_family_names()
TABLE_PATH = Path(__file__).with_name("stage2_table.json")
#: the nearest measured size must lie within this factor of the layer's size.
SIZE_TOLERANCE = 2.0


@dataclass(frozen=True)
class LayerShape:
    """What the choice depends on. ``voxels``: batch × spatial voxels of the basis conv's input."""

    family: str
    spatial_dims: int
    dtype: str
    in_channels: int
    out_channels: int
    kernel_size: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    groups: int
    voxels: int

    def key(self) -> dict:
        row = asdict(self)
        row.pop("voxels")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in row.items()}


@functools.lru_cache(maxsize=4)
def load_table(path: Path = TABLE_PATH) -> dict:
    """The table ``{"entries": [...], ...}``; an absent file is an empty table."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        return {"entries": []}


def choose_stage2(shape: LayerShape, device: str, table: dict | None = None) -> bool:
    """Whether the measured table says stage 2 is faster than stage 1 for ``shape`` on GPU ``device``."""
    table = load_table() if table is None else table
    key = shape.key()
    rows = [r for r in table.get("entries", []) if r.get("device") == device
            and all(r.get(k) == v for k, v in key.items())]
    if not rows or shape.voxels < 1:
        return False
    nearest = min(rows, key=lambda r: abs(math.log(r["voxels"] / shape.voxels)))
    if abs(math.log(nearest["voxels"] / shape.voxels)) > math.log(SIZE_TOLERANCE):
        return False
    return nearest["stage2_ms"] < nearest["stage1_ms"]
