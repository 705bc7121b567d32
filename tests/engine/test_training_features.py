"""Training features on the hook points: early stopping, gradient accumulation, EMA weights, TensorBoard."""

import json

import numpy as np
import pytest
import torch

from kanseg.checkpoint import load_checkpoint
from kanseg.config import load_config
from kanseg.engine import train
from kanseg.engine.callbacks import Callback
from kanseg.engine.distributed import DistributedContext
from kanseg.engine.ema import EMAWeights
from kanseg.engine.trainer import _train
from kanseg.errors import KansegError


def _metrics(run_dir):
    return [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def test_early_stopping_finishes_the_run(tiny_config, tmp_path):
    """min_delta 1 cannot be beaten: epoch 1 sets the best, patience 1 stops after epoch 2 of 5."""
    run_dir = tmp_path / "run"
    result = train(tiny_config(run_dir, epochs=5, **{"early_stop.patience": 1, "early_stop.min_delta": 1.0}))
    assert [r["epoch"] for r in result.history] == [1, 2] == [r["epoch"] for r in _metrics(run_dir)]
    summary = json.loads((run_dir / "summary.json").read_text())
    stopped = summary["run"]["stopped_early"]
    assert stopped["epoch"] == 2 and "dice has not improved by more than 1 for 1 epochs" in stopped["reason"]
    assert summary["val"]["checkpoint"] == "best.pt" and len(summary["val"]["cases"]) == 8
    assert result.summary["val"]["epoch"] == result.best_epoch
    assert "early stop after epoch 2: dice has not improved" in (run_dir / "log.txt").read_text()
    assert load_checkpoint(run_dir / "last.pt")["callbacks"]["EarlyStopping"]["best_epoch"] == 1
    with pytest.raises(KansegError, match="stopped early after epoch 2 .*the run is finished"):
        train(load_config(run_dir / "config.yaml"), resume=run_dir)


class StepRecorder(Callback):
    """Which batches stepped the optimiser, and the gradients of the first step."""

    def __init__(self):
        self.stepped, self.grads = [], None

    def on_train_batch_end(self, state):
        self.stepped.append(state.stepped)
        if state.stepped and self.grads is None:
            self.grads = [p.grad.clone() for p in state.model.parameters()]


def test_gradient_accumulation_steps_and_gradients(tiny_config, tmp_path):
    """6 batches of 4 with accumulate 4: groups 4 + 2, two steps; 2 x 2 batches accumulated give the gradient of
    one batch of 4 (the loss is a mean over samples and the model has no batch statistics)."""
    runs = {}
    for name, overrides in [("plain", {"batch_size": 4}), ("acc2", {"batch_size": 2, "optim.accumulate": 2}),
                            ("acc4", {"batch_size": 4, "optim.accumulate": 4})]:
        runs[name] = StepRecorder()
        _train(tiny_config(tmp_path / name, epochs=1, val_every=5, **overrides), None, None, DistributedContext(),
               callbacks=[runs[name]])
    assert runs["acc4"].stepped == [False, False, False, True, False, True]
    assert runs["acc2"].stepped == [False, True] * 6
    adam = load_checkpoint(tmp_path / "acc4" / "last.pt")["optimizer"]["state"]
    assert {int(s["step"]) for s in adam.values()} == {2}
    for accumulated, whole in zip(runs["acc2"].grads, runs["plain"].grads, strict=True):
        torch.testing.assert_close(accumulated, whole, rtol=1e-4, atol=1e-6)


def test_ema_update_is_the_moving_average():
    live = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    ema = EMAWeights(0.9)
    ema.model = __import__("copy").deepcopy(live)
    before = {k: v.clone() for k, v in ema.model.state_dict().items()}
    with torch.no_grad():
        for p in live.parameters():
            p.add_(1.0)
    live.train()(torch.randn(4, 3))  # moves the running statistics and the batch counter
    ema.update(live)
    for key, value in ema.model.state_dict().items():
        new = live.state_dict()[key]
        expected = 0.9 * before[key] + 0.1 * new if value.is_floating_point() else new
        torch.testing.assert_close(value, expected)
    with pytest.raises(ValueError, match=r"in \(0, 1\)"):
        EMAWeights(1.0)


def test_ema_weights_are_validated_and_stored_in_best(tiny_config, tmp_path):
    run_dir = tmp_path / "run"
    result = train(tiny_config(run_dir, epochs=2, **{"optim.ema_decay": 0.5}))
    last, best = load_checkpoint(run_dir / "last.pt"), load_checkpoint(run_dir / "best.pt")
    ema = last["callbacks"]["EMAWeights"]
    assert ema["decay"] == 0.5
    assert any(not torch.equal(ema["weights"][k], last["state_dict"][k]) for k in ema["weights"])
    if result.best_epoch == 2:  # the EMA at the end is what the last validation scored
        for key, value in ema["weights"].items():
            assert torch.equal(best["state_dict"][key], value), key
    # the summary evaluates best.pt, which holds the EMA weights scored during training
    val = _metrics(run_dir)[result.best_epoch - 1]["val"]
    assert result.summary["val"]["report"]["per_image"]["dice"]["mean"] == pytest.approx(val["dice"])


def read_scalars(run_dir):
    """{tag: [(step, value), ...]} of the TensorBoard events in ``run_dir``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def tensorboard_expected(run_dir):
    """The same tags from metrics.jsonl, as float32 (event files hold 32-bit scalars)."""
    out = {}
    for r in _metrics(run_dir):
        values = {"train/loss": r["train_loss"], **{f"lr/{g}": v for g, v in r["lr"].items()},
                  **{f"val/{m}": v for m, v in (r.get("val") or {}).items()}}
        for tag, value in values.items():
            out.setdefault(tag, []).append((r["epoch"], float(np.float32(value))))
    return out


def test_tensorboard_events_equal_metrics_jsonl(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    run_dir = tmp_path / "run"
    train(tiny_config(run_dir, epochs=2, val_every=2, tensorboard=True, **{"optim.kan_lr": 1e-2}))
    assert list(run_dir.glob("events.out.tfevents.*"))
    scalars = read_scalars(run_dir)
    assert {"train/loss", "lr/kan", "lr/other", "val/dice", "val/iou"} <= set(scalars)
    assert scalars == tensorboard_expected(run_dir)
    assert [step for step, _ in scalars["val/dice"]] == [2]  # epoch 1 was not validated


def test_tensorboard_missing_is_a_one_line_error(tiny_config, tmp_path, monkeypatch):
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorboard" else
                        find_spec(name, *a))
    out = tmp_path / "run"
    with pytest.raises(KansegError, match=r"^tensorboard: true needs the tensorboard package: "
                                          r"pip install 'kanseg\[tensorboard\]'$"):
        train(tiny_config(out, epochs=1, tensorboard=True))
    assert not out.exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="fp16 GradScaler needs CUDA")
def test_fp16_gradient_accumulation_scales_once_per_step(tiny_config, tmp_path):
    """fp16: each accumulated loss is scaled, the optimiser step unscales the summed gradient once; its first
    step's gradient is that of one whole batch (fp16 rounding aside)."""
    runs = {}
    for name, overrides in [("plain", {"batch_size": 4}), ("acc2", {"batch_size": 2, "optim.accumulate": 2})]:
        runs[name] = StepRecorder()
        _train(tiny_config(tmp_path / name, epochs=1, val_every=5, amp="fp16", device="cuda", **overrides), None,
               None, DistributedContext(device=torch.device("cuda")), callbacks=[runs[name]])
    assert runs["acc2"].stepped == [False, True] * 6
    assert load_checkpoint(tmp_path / "acc2" / "last.pt")["scaler"]["scale"] > 0
    for accumulated, whole in zip(runs["acc2"].grads, runs["plain"].grads, strict=True):
        torch.testing.assert_close(accumulated, whole, rtol=5e-2, atol=1e-3, equal_nan=True)


@pytest.fixture(scope="module")
def multiclass_root(tmp_path_factory):
    from kanseg.data import generate_synthetic

    return generate_synthetic("multiclass2d", tmp_path_factory.mktemp("mc") / "data", n_cases=16, seed=0)


@pytest.mark.parametrize("loss", [
    {"loss.name": "dice-focal", "loss.class_weights": [0.2, 1.0, 2.0]},
    {"loss.name": "bce", "loss.class_weights": [0.5, 1.0, 1.0], "loss.include_background": True},
    {"loss.name": "tversky", "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7},
], ids=["dice-focal-weighted", "ce-weighted", "tversky"])
def test_multiclass_losses_train(multiclass_root, tmp_path, loss):
    cfg = load_config(None, {"data.dataset": str(multiclass_root / "dataset.json"), "data.image_size": 32,
                             "model.name": "unet-conv", "model.kwargs": {"base_width": 4, "depth": 2},
                             "batch_size": 4, "epochs": 1, "device": "cpu", "out": str(tmp_path / "run"), **loss})
    (record,) = train(cfg).history
    assert np.isfinite(record["train_loss"]) and 0 <= record["val"]["dice"] <= 1


def test_class_weights_must_match_the_classes(multiclass_root, tmp_path):
    out = tmp_path / "run"
    cfg = load_config(None, {"data.dataset": str(multiclass_root / "dataset.json"), "data.image_size": 32,
                             "model.name": "unet-conv", "model.kwargs": {"base_width": 4, "depth": 2}, "epochs": 1,
                             "device": "cpu", "out": str(out), "loss.class_weights": [1.0, 2.0]})
    with pytest.raises(KansegError, match="loss.class_weights has 2 values; this model has 3 classes"):
        train(cfg)
    assert not out.exists()
