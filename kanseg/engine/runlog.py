"""What a run shows and keeps: progress bars on a terminal, plain lines elsewhere, ``log.txt``,
``metrics.jsonl`` (one JSON line per epoch) and JSON written atomically.

Only the main process of a distributed run writes or prints (``enabled=False`` on the others).
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO, TypeVar

from tqdm import tqdm

from kanseg.atomic import write_text_atomic

T = TypeVar("T")


def _finite(obj: Any) -> Any:
    """JSON-safe copy: NaN / inf floats become None."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def to_json(obj: Any) -> str:
    return json.dumps(_finite(obj), indent=2, allow_nan=False)


def write_json(path: str | Path, obj: Any) -> Path:
    """Atomically write ``obj`` as JSON (NaN written as null)."""
    return write_text_atomic(path, to_json(obj) + "\n")


def read_json(path: str | Path) -> Any:
    return json.loads(Path(path).read_text())


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Bar:
    """Stand-in for a tqdm bar when not on a terminal: iterates, ignores postfix updates."""

    def __init__(self, iterable: Iterable[T]):
        self.iterable = iterable

    def __iter__(self) -> Iterator[T]:
        return iter(self.iterable)

    def set_postfix(self, *args: Any, **kwargs: Any) -> None:
        pass


class RunLog:
    """Console + ``log.txt`` + ``metrics.jsonl`` of one run.

    Args:
        run_dir: where ``log.txt`` and ``metrics.jsonl`` live (None: console only).
        enabled: False on non-main ranks: nothing is printed or written.
        stream: where messages go (stdout); progress bars go to stderr when it is a terminal.
    """

    def __init__(self, run_dir: Path | None, enabled: bool = True, stream: TextIO | None = None):
        self.run_dir = run_dir
        self.enabled = enabled
        self.stream = stream or sys.stdout
        self.interactive = enabled and sys.stderr.isatty()

    def info(self, message: str) -> None:
        if not self.enabled:
            return
        if self.interactive:
            tqdm.write(message, file=self.stream)
        else:
            print(message, file=self.stream, flush=True)
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            with open(self.run_dir / "log.txt", "a") as handle:
                handle.write(message + "\n")

    def bar(self, iterable: Iterable[T], total: int | None = None, desc: str = "", leave: bool = False) -> Bar:
        """A tqdm bar on a terminal, a silent pass-through otherwise (both have ``set_postfix``)."""
        if not self.interactive:
            return Bar(iterable)
        return tqdm(iterable, total=total, desc=desc, leave=leave, file=sys.stderr, dynamic_ncols=True)

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Append one line to ``metrics.jsonl``."""
        if self.enabled and self.run_dir is not None:
            with open(self.run_dir / "metrics.jsonl", "a") as handle:
                handle.write(json.dumps(_finite(record)) + "\n")

    def truncate_epochs(self, last_epoch: int) -> None:
        """Drop ``metrics.jsonl`` lines after ``last_epoch`` (a resumed run rewrites them), atomically."""
        if not (self.enabled and self.run_dir is not None):
            return
        path = self.run_dir / "metrics.jsonl"
        kept = [r for r in read_jsonl(path) if r.get("epoch", 0) <= last_epoch]
        write_text_atomic(path, "".join(json.dumps(r) + "\n" for r in kept))
