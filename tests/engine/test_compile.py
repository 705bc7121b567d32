"""``compile: true``: the training forward runs through torch.compile, everything else stays the plain model; the
cases it cannot serve are refused in one line before anything is written."""

import shutil

import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.engine import setup, train
from kanseg.errors import KansegError


@pytest.mark.skipif(not any(shutil.which(c) for c in ("g++", "c++", "clang++")), reason="no C++ compiler")
def test_compiled_training_learns_and_saves_the_plain_model(tiny_config, tmp_path):
    torch._dynamo.reset()
    result = train(tiny_config(tmp_path / "run", epochs=2, compile=True,
                               **{"model.name": "unet-conv", "model.kwargs": {"base_width": 4, "depth": 2}}))
    metrics = result.history
    assert metrics[-1]["train_loss"] < metrics[0]["train_loss"]
    state = load_checkpoint(result.run_dir / "best.pt")  # weights_only
    assert state["state_dict"] and not any("_orig_mod" in key for key in state["state_dict"])
    model = build_model(state)  # the plain model class, weights loaded
    assert isinstance(model, torch.nn.Module) and not hasattr(model, "_orig_mod")
    assert "compile: the first training step compiles" in (result.run_dir / "log.txt").read_text()
    assert result.summary["val"]["report"]["per_image"]["dice"]["mean"] >= 0


@pytest.mark.parametrize(("overrides", "message"), [
    ({"loss.l2_activation": 1e-4}, "does not combine with loss.l1_activation"),
])
def test_compile_refusals(tiny_config, tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(KansegError, match=message):
        train(tiny_config(out, compile=True, **overrides))
    assert not out.exists()


def test_compile_needs_a_cxx_compiler_on_cpu_and_one_process(tiny_config, tmp_path, monkeypatch):
    cfg = tiny_config(tmp_path / "run", compile=True)
    with pytest.raises(KansegError, match="not supported under torchrun"):
        setup.check_compile(cfg, torch.device("cpu"), distributed=True)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(KansegError, match="needs a C\\+\\+ compiler"):
        setup.check_compile(cfg, torch.device("cpu"), distributed=False)
    with pytest.raises(KansegError, match="needs a C\\+\\+ compiler"):
        train(cfg)
    assert not (tmp_path / "run").exists()
    setup.check_compile(tiny_config(tmp_path / "other"), torch.device("cpu"), distributed=False)  # compile off: ok
