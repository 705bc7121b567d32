"""save_pretrained / from_pretrained: safetensors + config.json round trip, and one-line errors for bad folders."""

from __future__ import annotations

import json

import pytest
import torch

from kanseg.errors import KansegError
from kanseg.models import create_model, from_pretrained, save_pretrained

KWARGS = {"spatial_dims": 2, "in_channels": 1, "out_channels": 2, "depth": 2, "base_width": 4,
          "block_options": {"degree": 2}}


@pytest.fixture
def folder(tmp_path):
    torch.manual_seed(0)
    model = create_model("unet-gram", **KWARGS)
    save_pretrained(tmp_path / "m", model_name="unet-gram", model_kwargs=KWARGS, state_dict=model.state_dict(),
                    preprocessing={"spatial_dims": 2})
    return tmp_path / "m", model.eval()


def test_round_trip_bit_equal(folder):
    path, model = folder
    loaded = from_pretrained(path)
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), loaded.state_dict().values()))
    x = torch.randn(1, 1, 9, 11)
    assert torch.equal(loaded(x), model(x))
    config = json.loads((path / "config.json").read_text())
    assert config["model"] == {"name": "unet-gram", "kwargs": KWARGS} and config["preprocessing"]["spatial_dims"] == 2


@pytest.mark.parametrize("damage,message", [
    (lambda p: (p / "config.json").unlink(), "no config.json"),
    (lambda p: (p / "model.safetensors").unlink(), "no model.safetensors"),
    (lambda p: (p / "config.json").write_text("{not json"), "not valid JSON"),
    (lambda p: (p / "config.json").write_text('{"format": "other"}'), "not a kanseg pretrained config"),
    (lambda p: (p / "model.safetensors").write_bytes(b"\x00" * 20), "corrupt, truncated"),
])
def test_bad_folders_one_line(folder, damage, message):
    path, _ = folder
    damage(path)
    with pytest.raises(KansegError, match=message):
        from_pretrained(path)


def test_weights_of_another_model(folder):
    path, _ = folder
    config = json.loads((path / "config.json").read_text())
    config["model"]["kwargs"]["base_width"] = 8
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(KansegError, match="does not fit model 'unet-gram'"):
        from_pretrained(path)
    with pytest.raises(KansegError, match="folder not found"):
        from_pretrained(path / "nope")
