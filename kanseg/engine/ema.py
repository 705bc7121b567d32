"""An exponential moving average of the weights, used for validation and ``best.pt`` (``optim.ema_decay``).

After every optimiser step each floating-point entry of the state dict (parameters and buffers) moves towards
the live model, ``ema <- decay * ema + (1 - decay) * live``; integer entries (BatchNorm's batch counter) are
copied. The averaged copy is stored in ``last.pt`` with the callback state, so a resumed run continues it
bit for bit; ``last.pt``'s ``state_dict`` stays the live (trained) weights.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from kanseg.engine.callbacks import Callback
from kanseg.engine.distributed import broadcast_buffers

if TYPE_CHECKING:
    from kanseg.engine.trainer import TrainState


class EMAWeights(Callback):
    """Keeps ``model``, an averaged copy of the trained model, and makes it ``state.eval_model``."""

    def __init__(self, decay: float):
        if not 0 < decay < 1:
            raise ValueError(f"EMA decay must be in (0, 1), got {decay}")
        self.decay = decay
        self.model: nn.Module | None = None
        self._restored: dict[str, torch.Tensor] | None = None

    def on_fit_start(self, state: TrainState) -> None:
        self.model = copy.deepcopy(state.model).requires_grad_(False)
        if self._restored is not None:
            self.model.load_state_dict(self._restored)
            self._restored = None
        state.eval_model = self.model

    def on_train_batch_end(self, state: TrainState) -> None:
        if state.stepped:
            self.update(state.model)

    @torch.no_grad()
    def update(self, live: nn.Module) -> None:
        """One averaging step towards ``live`` (same architecture as :attr:`model`)."""
        for ema, new in zip(self.model.state_dict().values(), live.state_dict().values(), strict=True):
            if ema.is_floating_point():
                ema.lerp_(new.to(ema.dtype), 1 - self.decay)
            else:
                ema.copy_(new)

    def on_train_epoch_end(self, state: TrainState) -> None:
        broadcast_buffers(state.ctx, self.model)  # each rank averaged its own running statistics

    def state_dict(self) -> dict[str, Any]:
        return {"decay": self.decay, "weights": self.model.state_dict()} if self.model is not None else {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._restored = state["weights"]
