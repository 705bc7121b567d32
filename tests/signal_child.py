"""Run the ``kanseg`` CLI and make it signal itself at a chosen point (kill -9 / Ctrl-C tests).

    python -m tests.signal_child SIGNAL POINT N -- kanseg arguments...

POINT is where the N-th hit sends SIGNAL (``SIGKILL``, ``SIGINT``) to the process itself:
``epoch`` (the start of a training epoch), ``save-last`` (inside a ``last.pt`` write: the temporary
file is complete, not yet renamed), ``predict`` (the start of one input of ``kanseg predict``).
Production code has no hook: the points are wrapped here.
"""

from __future__ import annotations

import os
import signal
import sys

import torch

import kanseg.engine.trainer as trainer
import kanseg.inference.batch as batch
from kanseg.cli import main


def _arm(point: str, nth: int, sig: int) -> None:
    hits = [0]

    def hit() -> None:
        hits[0] += 1
        if hits[0] == nth:
            os.kill(os.getpid(), sig)

    def before(function):
        def wrapped(*args, **kwargs):
            hit()
            return function(*args, **kwargs)

        return wrapped

    if point == "epoch":
        trainer._train_epoch = before(trainer._train_epoch)
    elif point == "predict":
        batch.predict_scan = before(batch.predict_scan)
    elif point == "save-last":
        save = torch.save

        def save_then_hit(obj, f, *args, **kwargs):
            save(obj, f, *args, **kwargs)
            if os.path.basename(str(f)).startswith(".last.pt."):
                hit()

        torch.save = save_then_hit
    else:
        raise SystemExit(f"unknown point {point!r}")


if __name__ == "__main__":
    name, point, nth, sep, *argv = sys.argv[1:]
    assert sep == "--", "usage: python -m tests.signal_child SIGNAL POINT N -- ARGS..."
    _arm(point, int(nth), getattr(signal, name))
    main(argv)
