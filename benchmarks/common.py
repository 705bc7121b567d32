"""Helpers shared by the benchmark scripts: device naming, timing, saved-for-backward bytes, JSON output."""

from __future__ import annotations

import json
import platform
import time
from pathlib import Path

import torch

from kanseg.kernels.memory import saved_bytes  # noqa: F401  (re-exported for the scripts)

RESULTS = Path(__file__).resolve().parent / "results"


def device_name(device: torch.device) -> str:
    """A short machine label: the GPU name on CUDA, the CPU model on CPU."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"CPU {cpu} ({torch.get_num_threads()} threads)"


def device_slug(device: torch.device) -> str:
    return "cuda-" + torch.cuda.get_device_name(device).lower().replace(" ", "-") if device.type == "cuda" else "cpu"




def time_fwd_bwd(module: torch.nn.Module, x: torch.Tensor, repeats: int = 3, warmup: int = 1) -> float:
    """Median seconds of one forward + backward pass."""
    def step():
        xx = x.detach().requires_grad_()
        module(xx).float().sum().backward()

    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    for _ in range(warmup):
        step()
    times = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t0)
    return sorted(times)[len(times) // 2]


def write_json(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / name
    path.write_text(json.dumps(payload, indent=2) + "\n")
    return path
