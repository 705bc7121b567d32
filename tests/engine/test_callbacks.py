"""The trainer's hook points: called in order, with the state they promise; metrics.csv is one callback."""

import csv

from kanseg.engine.callbacks import Callback, MetricsCSV
from kanseg.engine.distributed import DistributedContext
from kanseg.engine.trainer import _train


class Recorder(Callback):
    def __init__(self):
        self.calls = []

    def on_fit_start(self, state):
        self.calls.append(("fit_start", state.start_epoch, state.end_epoch))

    def on_epoch_start(self, state):
        self.calls.append(("epoch_start", state.epoch))

    def on_train_batch_end(self, state):
        assert state.batch_loss == state.batch_loss  # a finite float, set before the hook
        self.calls.append(("batch", state.batch))

    def on_train_epoch_end(self, state):
        self.calls.append(("train_epoch_end", state.record["epoch"]))

    def on_validation_end(self, state):
        self.calls.append(("validation", sorted(state.record["val"])[:2]))

    def on_checkpoint(self, state):
        assert (state.run_dir / "last.pt").is_file()
        self.calls.append(("checkpoint", state.record["epoch"]))

    def on_epoch_end(self, state):
        self.calls.append(("epoch_end", state.record["epoch"], "time_s" in state.record))

    def on_fit_end(self, state):
        self.calls.append(("fit_end", state.result.best_epoch, bool(state.result.summary)))


def test_hooks_are_called_in_order_and_metrics_csv_is_written(tiny_config, tmp_path):
    recorder = Recorder()
    cfg = tiny_config(tmp_path / "run", epochs=2, val_every=2, **{"optim.kan_lr": 1e-2})
    result = _train(cfg, None, None, DistributedContext(), callbacks=[recorder])
    batches = [("batch", i) for i in range(6)]  # 24 train cases, batch size 4
    assert recorder.calls == [
        ("fit_start", 0, 2),
        ("epoch_start", 0), *batches, ("train_epoch_end", 1), ("checkpoint", 1), ("epoch_end", 1, True),
        ("epoch_start", 1), *batches, ("train_epoch_end", 2), ("validation", ["dice", "global_dice"]),
        ("checkpoint", 2),
        ("epoch_end", 2, True),
        ("fit_end", 2, True),
    ]
    with open(tmp_path / "run" / "metrics.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["epoch", "train_loss", "lr_kan", "lr_other", "val_dice", "val_iou", "val_global_dice",
                             "val_global_iou", "val_ukan_dice", "val_ukan_iou", "time_s"]
    assert [r["epoch"] for r in rows] == ["1", "2"]
    assert rows[0]["val_dice"] == "" and float(rows[1]["val_dice"]) == result.history[1]["val"]["dice"]
    assert float(rows[0]["lr_kan"]) == 1e-2


def test_metrics_csv_row_leaves_missing_and_non_finite_cells_empty():
    writer = MetricsCSV()
    writer.groups = ["kan", "other"]
    row = writer.row({"epoch": 3, "train_loss": 0.5, "lr": {"other": 1e-4}, "val": {"dice": float("nan")},
                      "time_s": 1.5})
    assert row == [3, 0.5, "", 1e-4, "", "", "", "", "", "", 1.5]


class Stateful(Callback):
    """Counts batches across runs: its state travels in last.pt."""

    def __init__(self):
        self.batches = 0

    def on_train_batch_end(self, state):
        self.batches += 1

    def state_dict(self):
        return {"batches": self.batches}

    def load_state_dict(self, state):
        self.batches = state["batches"]


def test_callback_state_is_kept_in_last_pt_and_restored(tiny_config, tmp_path):
    from kanseg.checkpoint import load_checkpoint
    from kanseg.config import load_config

    run_dir = tmp_path / "run"
    _train(tiny_config(run_dir, epochs=2), None, 1, DistributedContext(), callbacks=[Stateful()])
    assert load_checkpoint(run_dir / "last.pt")["callbacks"] == {"Stateful": {"batches": 6}}
    resumed = Stateful()
    _train(load_config(run_dir / "config.yaml"), run_dir, None, DistributedContext(), callbacks=[resumed])
    assert resumed.batches == 12 and load_checkpoint(run_dir / "last.pt")["callbacks"]["Stateful"] == {"batches": 12}
