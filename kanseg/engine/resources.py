"""Peak memory of a run: this process's resident-set high-water mark (and CUDA's), resettable per run.

On Linux, writing ``5`` to ``/proc/self/clear_refs`` resets ``VmHWM`` (the peak RSS), so several runs trained
in one process (``kanseg benchmark``) each report their own peak; where that is not possible the value is the
process's peak so far (``ru_maxrss``), which :func:`peak_memory` says in ``rss_scope``.
"""

from __future__ import annotations

import resource
import sys
from pathlib import Path
from typing import Any

import torch

_STATUS, _CLEAR = Path("/proc/self/status"), Path("/proc/self/clear_refs")


def reset_peak_memory(device: torch.device | str = "cpu") -> bool:
    """Start a new peak-memory window; True when the RSS peak could be reset (Linux), else it keeps growing."""
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats(device)
    try:
        _CLEAR.write_text("5")
    except OSError:
        return False
    return True


def _vm_hwm_mb() -> float | None:
    try:
        for line in _STATUS.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024  # kB
    except (OSError, ValueError, IndexError):
        return None
    return None


def peak_memory(device: torch.device | str = "cpu", *, since_reset: bool = True) -> dict[str, Any]:
    """``{"peak_rss_mb", "rss_scope", ["peak_cuda_mb"]}`` of this process since :func:`reset_peak_memory`
    (``rss_scope`` = ``run``) or since it started (``process``)."""
    hwm = _vm_hwm_mb()
    if hwm is None:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        hwm, since_reset = peak / (1024 * 1024 if sys.platform == "darwin" else 1024), False
    out: dict[str, Any] = {"peak_rss_mb": round(hwm, 1), "rss_scope": "run" if since_reset else "process"}
    device = torch.device(device)
    if device.type == "cuda" and torch.cuda.is_available():
        out["peak_cuda_mb"] = round(torch.cuda.max_memory_allocated(device) / 2**20, 1)
    return out
