"""Hook points of the training loop: a :class:`Callback` is told, at fixed points, what the run is doing.

The loop (:mod:`kanseg.engine.trainer`) calls, on every rank and in this order::

    on_fit_start                      after set-up (model, data, optimiser built; a resumed run restored)
    per epoch:
        on_epoch_start                before the epoch's seeding
        on_train_batch_end            after each optimiser step (``state.batch``, ``state.batch_loss``)
        on_validation_end             when the epoch was validated (``state.record["val"]``)
        on_checkpoint                 after ``last.pt`` (and ``best.pt``) and ``metrics.jsonl`` were written
        on_epoch_end                  after the epoch's log line (``state.record`` complete)
    on_fit_end                        after the final evaluation (``state.result``; also when stopped early)

Each hook receives the :class:`~kanseg.engine.trainer.TrainState`. Callbacks observe; one that wrote files
should do so on the main rank only (``state.ctx.is_main``), and none may draw random numbers (a resumed run
must replay the uninterrupted one exactly). A training feature is a new callback in :func:`default_callbacks`,
not an edit of the loop.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from kanseg.config import write_text_atomic
from kanseg.engine.runlog import read_jsonl
from kanseg.metrics import MONITORS

if TYPE_CHECKING:
    from kanseg.engine.trainer import TrainState

HOOKS = ("on_fit_start", "on_epoch_start", "on_train_batch_end", "on_validation_end", "on_checkpoint",
         "on_epoch_end", "on_fit_end")


class Callback:
    """Base class: every hook does nothing; override the ones a feature needs."""

    def on_fit_start(self, state: TrainState) -> None: ...

    def on_epoch_start(self, state: TrainState) -> None: ...

    def on_train_batch_end(self, state: TrainState) -> None: ...

    def on_validation_end(self, state: TrainState) -> None: ...

    def on_checkpoint(self, state: TrainState) -> None: ...

    def on_epoch_end(self, state: TrainState) -> None: ...

    def on_fit_end(self, state: TrainState) -> None: ...


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


def default_callbacks() -> list[Callback]:
    """The callbacks of every training run."""
    return [MetricsCSV()]
