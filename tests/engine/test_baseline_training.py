"""The baselines and the KAN mixers train through kanseg's own trainer (one tiny epoch each)."""

import math

import pytest

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.engine import train

TINY_KWARGS = {"base_width": 4, "depth": 2}


@pytest.mark.parametrize("overrides, module", [
    ({"model.name": "monai-basicunet", "model.kwargs": {"features": [4, 4, 8, 8, 8, 4]}}, "MonaiBasicUNet"),
    ({"model.name": "monai-dynunet", "model.kwargs": {"depth": 3, "filters": [4, 8, 8]}}, "MonaiDynUNet"),
    ({"model.name": "smp-unet-resnet18", "model.kwargs": {"decoder_channels": [8, 8, 8, 4, 4]}}, "SmpUNet"),
    # whole kwargs dicts: dotted "model.kwargs.<key>" overrides write into the shared TINY dict of the fixture
    ({"model.kwargs": {**TINY_KWARGS, "mixer": "kan-attention", "mixer_options": {"degree": 2}}}, "KANSelfAttention"),
    ({"model.kwargs": {**TINY_KWARGS, "decoder_mixer": "kan-focal"}}, "KANFocalModulation"),
], ids=["basicunet", "dynunet", "smp-resnet18", "mixer-attention", "decoder-focal"])
def test_one_epoch(tmp_path, tiny_config, overrides, module):
    result = train(tiny_config(tmp_path / "run", epochs=1, **overrides))
    assert math.isfinite(result.best_value)
    model = build_model(load_checkpoint(result.run_dir / "best.pt"))
    assert module in {type(m).__name__ for m in model.modules()}


def test_penalties_are_added_and_logged_apart(tmp_path, tiny_config):
    import json

    result = train(tiny_config(tmp_path / "run", epochs=1, **{
        "loss.l1_weight": 1e-4, "loss.l1_activation": 1e-6, "loss.l2_activation": 1e-5}))
    record = json.loads((result.run_dir / "metrics.jsonl").read_text().splitlines()[-1])
    assert set(record["penalties"]) == {"l1_weight", "l1_activation", "l2_activation"}
    assert all(v > 0 for v in record["penalties"].values())
