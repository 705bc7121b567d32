"""TensorBoard event files in the run directory (``tensorboard: true``; ``pip install 'kanseg[tensorboard]'``).

One point per epoch, at step = epoch (1-based), the values of ``metrics.jsonl``: ``train/loss``, ``lr/<group>``
for each optimiser parameter group and ``val/<metric>`` on validated epochs. A resumed run purges the points of
epochs it replays, so ``tensorboard --logdir runs`` shows each run once.
"""

from __future__ import annotations

import importlib.util
from typing import TYPE_CHECKING, Any

from kanseg.engine.callbacks import Callback
from kanseg.errors import KansegError

if TYPE_CHECKING:
    from kanseg.engine.trainer import TrainState


def require_tensorboard() -> None:
    """One line when the optional dependency is missing."""
    if importlib.util.find_spec("tensorboard") is None:
        raise KansegError("tensorboard: true needs the tensorboard package: pip install 'kanseg[tensorboard]'")


class TensorBoard(Callback):
    """Writes the epoch scalars with :class:`torch.utils.tensorboard.SummaryWriter` (main rank only)."""

    def __init__(self) -> None:
        require_tensorboard()
        self.writer: Any = None

    def on_fit_start(self, state: TrainState) -> None:
        if not state.ctx.is_main:
            return
        from torch.utils.tensorboard import SummaryWriter

        purge = state.start_epoch + 1 if state.resumed else None
        self.writer = SummaryWriter(log_dir=str(state.run_dir), purge_step=purge)

    def on_epoch_end(self, state: TrainState) -> None:
        if self.writer is None:
            return
        record, step = state.record, state.record["epoch"]
        self.writer.add_scalar("train/loss", record["train_loss"], step)
        for group, lr in record["lr"].items():
            self.writer.add_scalar(f"lr/{group}", lr, step)
        for metric, value in (record.get("val") or {}).items():
            self.writer.add_scalar(f"val/{metric}", value, step)
        self.writer.flush()

    def on_fit_end(self, state: TrainState) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None
