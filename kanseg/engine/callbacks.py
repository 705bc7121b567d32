"""Hook points of the training loop: a :class:`Callback` is told, at fixed points, what the run is doing.

The loop (:mod:`kanseg.engine.trainer`) calls, on every rank and in this order::

    on_fit_start                      after set-up (model, data, optimiser built; a resumed run restored)
    per epoch:
        on_epoch_start                before the epoch's seeding
        on_train_batch_end            after each batch (``state.batch``, ``state.batch_loss``; ``state.stepped``:
                                      the optimiser stepped, i.e. the batch closed a gradient-accumulation group)
        on_train_epoch_end            after the epoch's pass: buffers synchronised over ranks, schedule stepped
        on_validation_end             when the epoch was validated (``state.record["val"]``)
        on_checkpoint                 after ``last.pt`` (and ``best.pt``) and ``metrics.jsonl`` were written
        on_epoch_end                  after the epoch's log line (``state.record`` complete)
    on_fit_end                        after the final evaluation (``state.result``; also when stopped early)

Each hook receives the :class:`~kanseg.engine.trainer.TrainState`. Callbacks observe, and may set two fields:
``state.eval_model`` (the weights validation scores and ``best.pt`` stores, e.g. an EMA) and
``state.stop_reason`` (ends the run after the epoch, which then finishes as a completed one). One that writes
files should do so on the main rank only (``state.ctx.is_main``), and none may draw random numbers (a resumed
run must replay the uninterrupted one exactly). A callback with state returns it from ``state_dict`` (plain
data and tensors): it is kept in ``last.pt`` and given back to ``load_state_dict`` before ``on_fit_start`` of a
resumed run. A training feature is a new callback in :func:`default_callbacks`, not an edit of the loop.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kanseg.config import TrainConfig, write_text_atomic
from kanseg.engine.runlog import read_jsonl
from kanseg.metrics import MONITORS

if TYPE_CHECKING:
    from kanseg.engine.trainer import TrainState

HOOKS = ("on_fit_start", "on_epoch_start", "on_train_batch_end", "on_train_epoch_end", "on_validation_end",
         "on_checkpoint", "on_epoch_end", "on_fit_end")


class Callback:
    """Base class: every hook does nothing; override the ones a feature needs."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_train_batch_end(self, state: TrainState) -> None: ...

    def on_train_epoch_end(self, state: TrainState) -> None: ...

    def on_validation_end(self, state: TrainState) -> None: ...

    def on_checkpoint(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """What a resumed run needs back (empty: nothing)."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class CallbackList(Callback):
    """Several callbacks as one: each hook calls theirs in order."""

    def __init__(self, callbacks: Iterable[Callback] = ()):
        self.callbacks = list(callbacks)
        for hook in HOOKS:
            setattr(self, hook, self._dispatcher(hook))

    def _dispatcher(self, hook: str):
        def dispatch(state: TrainState) -> None:
            for callback in self.callbacks:
                getattr(callback, hook)(state)

        return dispatch

    def state_dict(self) -> dict[str, Any]:
        """``{class name: state}`` of the callbacks that have one."""
        states = {type(c).__name__: c.state_dict() for c in self.callbacks}
        return {name: state for name, state in states.items() if state}

    def load_state_dict(self, states: dict[str, Any]) -> None:
        for callback in self.callbacks:
            if type(callback).__name__ in states:
                callback.load_state_dict(states[type(callback).__name__])


class MetricsCSV(Callback):
    """``metrics.csv`` in the run directory: one row per epoch, for spreadsheets and plots.

    Columns (fixed for the run): ``epoch``, ``train_loss``, ``lr_<group>`` per optimiser parameter group,
    ``val_<metric>`` per :data:`kanseg.metrics.MONITORS` entry (empty when the epoch was not validated) and
    ``time_s``. At the start of a run the file is rebuilt from ``metrics.jsonl``, which a resumed run has already
    cut at its epoch: rows of epochs after it are dropped, as they are from ``metrics.jsonl``.
    """

    filename = "metrics.csv"

    def __init__(self) -> None:
        self.columns: list[str] = []
        self.groups: list[str] = []

    def on_fit_start(self, state: TrainState) -> None:
        self.groups = [g.get("name", str(i)) for i, g in enumerate(state.optimizer.param_groups)]
        self.columns = ["epoch", "train_loss", *(f"lr_{g}" for g in self.groups),
                        *(f"val_{m}" for m in MONITORS), "time_s"]
        if not state.ctx.is_main:
            return
        path = state.run_dir / self.filename
        records = read_jsonl(state.run_dir / "metrics.jsonl")
        if records or path.exists():
            write_text_atomic(path, self._text([self.columns, *(self.row(r) for r in records)]))

    def on_epoch_end(self, state: TrainState) -> None:
        if not state.ctx.is_main:
            return
        path = state.run_dir / self.filename
        lines = [self.row(state.record)] if path.exists() else [self.columns, self.row(state.record)]
        with open(path, "a", newline="") as handle:
            handle.write(self._text(lines))

    def row(self, record: dict[str, Any]) -> list[Any]:
        """One epoch's cells from its ``metrics.jsonl`` record (missing or non-finite values: empty)."""
        lrs, val = record.get("lr", {}), record.get("val") or {}
        cells = [record.get("epoch"), record.get("train_loss"), *(lrs.get(g) for g in self.groups),
                 *(val.get(m) for m in MONITORS), record.get("time_s")]
        return ["" if c is None or (isinstance(c, float) and not math.isfinite(c)) else c for c in cells]

    @staticmethod
    def _text(rows: list[list[Any]]) -> str:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerows(rows)
        return buffer.getvalue()


class EarlyStopping(Callback):
    """Stop when ``monitor`` has not risen by more than ``min_delta`` above its best for ``patience`` epochs.

    Checked at each validation (all ranks see the same scores, so all stop together); the run then finishes as
    a completed one: ``best.pt`` evaluated, ``summary.json`` written with ``run.stopped_early``.
    """

    def __init__(self, monitor: str, patience: int, min_delta: float = 0.0):
        self.monitor, self.patience, self.min_delta = monitor, patience, min_delta
        self.best, self.best_epoch = -math.inf, 0

    def on_validation_end(self, state: TrainState) -> None:
        value, epoch = state.record["val"][self.monitor], state.epoch + 1
        if value > self.best + self.min_delta:
            self.best, self.best_epoch = value, epoch
        elif epoch - self.best_epoch >= self.patience:
            state.stop_reason = (f"{self.monitor} has not improved by more than {self.min_delta:g} for "
                                 f"{epoch - self.best_epoch} epochs (patience {self.patience}; best "
                                 f"{self.best:.4f} at epoch {self.best_epoch})")

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "best_epoch": self.best_epoch}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.best_epoch = float(state["best"]), int(state["best_epoch"])


def default_callbacks(cfg: TrainConfig | None = None) -> list[Callback]:
    """The callbacks of a training run: ``metrics.csv`` always, then those ``cfg`` turns on (EMA of the weights,
    early stopping, TensorBoard). Options that cannot work (TensorBoard not installed) fail here, before the
    run writes anything."""
    callbacks: list[Callback] = [MetricsCSV()]
    if cfg is None:
        return callbacks
    if cfg.optim.ema_decay is not None:
        from kanseg.engine.ema import EMAWeights

        callbacks.append(EMAWeights(cfg.optim.ema_decay))
    if cfg.loss.l1_weight or cfg.loss.l1_activation or cfg.loss.l2_activation:
        from kanseg.engine.penalties import PenaltyLog

        callbacks.append(PenaltyLog())
    if cfg.early_stop.patience is not None:
        callbacks.append(EarlyStopping(cfg.monitor, cfg.early_stop.patience, cfg.early_stop.min_delta))
    if cfg.tensorboard:
        from kanseg.engine.tensorboard import TensorBoard

        callbacks.append(TensorBoard())
    return callbacks
