"""Stage 1 / stage 2 choice from the measured table: only a measured, faster, same-GPU, same-layer row picks stage 2."""

import json

import pytest
import torch

from kanseg import kernels
from kanseg.kan import create_kan_conv
from kanseg.kernels.stage2_table import TABLE_PATH, LayerShape, choose_stage2, load_table

GPU = "NVIDIA H100 80GB HBM3"
SHAPE = LayerShape("gram", 3, "bfloat16", 32, 32, (3, 3, 3), (1, 1, 1), (1, 1, 1), 1, 2 * 64**3)


def _row(shape=SHAPE, device=GPU, stage1_ms=2.0, stage2_ms=1.0, **changes):
    return {"device": device, **shape.key(), "voxels": shape.voxels, "stage1_ms": stage1_ms, "stage2_ms": stage2_ms,
            **changes}


def test_shipped_table_is_valid_json_and_never_chooses_unmeasured():
    table = json.loads(TABLE_PATH.read_text())
    assert isinstance(table["entries"], list)
    assert load_table() == table
    for row in table["entries"]:  # every shipped row is a measurement of both stages on a named GPU
        assert row["device"] and row["stage1_ms"] > 0 and row["stage2_ms"] > 0
    assert not choose_stage2(SHAPE, "some other GPU")


def test_faster_measured_row_chooses_stage2():
    assert choose_stage2(SHAPE, GPU, {"entries": [_row()]})


@pytest.mark.parametrize("why", ["slower", "other gpu", "other dtype", "other groups", "too small", "too large"])
def test_stage1_unless_measured_faster_for_this_layer(why):
    row = {
        "slower": _row(stage2_ms=2.5),
        "other gpu": _row(device="NVIDIA A100-SXM4-80GB"),
        "other dtype": _row(dtype="float32"),
        "other groups": _row(groups=2),
        "too small": _row(voxels=SHAPE.voxels // 3),
        "too large": _row(voxels=SHAPE.voxels * 3),
    }[why]
    assert not choose_stage2(SHAPE, GPU, {"entries": [row]})


def test_nearest_size_decides():
    rows = [_row(voxels=SHAPE.voxels // 2, stage2_ms=3.0), _row(voxels=SHAPE.voxels * 3 // 2, stage2_ms=1.0)]
    assert choose_stage2(SHAPE, GPU, {"entries": rows})
    rows[0]["voxels"] = SHAPE.voxels
    assert not choose_stage2(SHAPE, GPU, {"entries": rows})


def test_cpu_tensors_never_take_stage2():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1)
    assert not kernels.stage2_chosen(torch.randn(1, 4, 8, 8), "gram", layer.basis_conv, torch.float32)
