"""Atomic file writes: a temporary file in the target's folder, then ``os.replace``.

Every file kanseg writes (configs, checkpoints, JSON, predictions, cached arrays, generated images)
goes through :func:`atomic_path`, so a reader never sees a half-written file. Temporary files have
one documented name pattern::

    .<target name>.<8 random characters>.tmp[<suffix>]

for example ``.last.pt.k3j9x_2a.tmp`` or ``.case_1_mask.nii.gz.ab12cd34.tmp.nii.gz`` (the suffix,
when given, lets OpenCV / nibabel pick the format). A process killed between creating the temporary file
and renaming it leaves such a file behind; :func:`remove_stale_temps` finds kanseg's own by that
pattern (never other files) and is called when a run is resumed or a folder is written again.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

# tempfile's random part: 8 characters of [a-z0-9_]
TEMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[A-Za-z0-9]+)*)$")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path next to ``path`` (ending in ``.tmp<suffix>``); on success it replaces ``path``.

    On any exception (or a kill) ``path`` keeps its previous content; the temporary file is removed
    unless the process dies first.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)
    return Path(path)


def is_stale_temp(path: str | os.PathLike) -> bool:
    """True when ``path``'s name follows kanseg's temporary-file pattern (see the module docstring)."""
    return TEMP_NAME.match(Path(path).name) is not None


def remove_stale_temps(folder: str | os.PathLike, prefixes: Iterable[str] | None = None) -> list[Path]:
    """Delete kanseg's leftover temporary files in ``folder``; return them.

    ``prefixes``: only those of targets whose names start with one of them (the files this process is
    about to write), so a folder shared with another running process (predictions of several jobs) loses
    none of its writes in progress. Without ``prefixes``, call it only on a folder this process owns
    (a run directory being resumed or started again).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    prefixes = None if prefixes is None else tuple(prefixes)
    removed = []
    for path in sorted(folder.glob(".*.tmp*")):
        match = TEMP_NAME.match(path.name)
        if match and path.is_file() and (prefixes is None or match["target"].startswith(prefixes)):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            removed.append(path)
    return removed
