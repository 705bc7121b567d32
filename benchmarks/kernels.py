"""Benchmark of the fused KAN kernels against the eager reference and ``torch.compile`` of it.

Per family and layer shape (2D: B=8, 64→64, 128×128; 3D: B=2, 32→32, 64³; 3×3(×3) kernels, padding 1):

- ``saved_mib``: bytes saved for backward by the whole layer and by its basis branch (unique storages, measured with
  ``saved_tensors_hooks`` on fake tensors: exact, device-independent, no compute), with a plain
  Conv + InstanceNorm + SiLU layer of the same shape as the yardstick;
- ``fwd_bwd_ms`` and ``peak_mib`` (CUDA: ``max_memory_allocated``) for ``eager``, ``compile`` (``torch.compile`` of
  the eager layer) and ``fused`` (KANSEG_KERNELS=fused: Triton on CUDA, torch recompute on CPU);
- on CUDA, the expansion kernel's effective bandwidth against a device-to-device copy.

Results go to ``benchmarks/results/kernels-<device>.json`` (with the device name) and a markdown table to stdout.

    python benchmarks/kernels.py                         # CUDA if available, else CPU
    python benchmarks/kernels.py --device cpu --time-scale 0.25 --families gram relu --modes eager fused
    python benchmarks/kernels.py --stage2 [--stage2-table]   # CUDA: implicit-GEMM stage 2 (benchmarks/kernels_stage2.py)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import tempfile
import time
from pathlib import Path

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode

from kanseg import kernels
from kanseg.kan import create_kan_conv, list_families
from kanseg.kernels.memory import saved_bytes

SHAPES = {"2d": dict(nd=2, batch=8, channels=64, size=128), "3d": dict(nd=3, batch=2, channels=32, size=64)}
MODES = ("eager", "compile", "fused")
MIB = 2.0**20




class _Mode:
    """Sets KANSEG_KERNELS for the duration of a block."""

    def __init__(self, mode: str):
        self.mode = mode

    def __enter__(self):
        self.old = os.environ.get(kernels.ENV_VAR)
        os.environ[kernels.ENV_VAR] = self.mode

    def __exit__(self, *exc):
        if self.old is None:
            os.environ.pop(kernels.ENV_VAR, None)
        else:
            os.environ[kernels.ENV_VAR] = self.old


def _layer(family: str, shape: dict, device=None) -> nn.Module:
    torch.manual_seed(0)
    c = shape["channels"]
    layer = create_kan_conv(family, shape["nd"], c, c, 3, padding=1)
    return layer if device is None else layer.to(device)


def _plain(shape: dict, device=None) -> nn.Module:
    nd, c = shape["nd"], shape["channels"]
    conv = {2: nn.Conv2d, 3: nn.Conv3d}[nd](c, c, 3, padding=1, bias=False)
    norm = {2: nn.InstanceNorm2d, 3: nn.InstanceNorm3d}[nd](c)
    layer = nn.Sequential(conv, norm, nn.SiLU())
    return layer if device is None else layer.to(device)


def _input(shape: dict, device, scale: float = 1.0) -> torch.Tensor:
    size = max(4, int(round(shape["size"] * scale)))
    return torch.randn(shape["batch"], shape["channels"], *[size] * shape["nd"], device=device, requires_grad=True)


def memory_rows(family: str, shape_name: str) -> dict:
    """Saved-for-backward MiB at full size, with fake CPU tensors (shapes only, no compute)."""
    shape = SHAPES[shape_name]
    with FakeTensorMode():
        layer, plain, x = _layer(family, shape), _plain(shape), _input(shape, "cpu")
        row = {"input_mib": x.numel() * 4 / MIB, "plain_saved_mib": saved_bytes(lambda: plain(x)) / MIB}
        for mode in ("eager", "fused"):
            with _Mode(mode):
                row[f"{mode}_saved_mib"] = saved_bytes(lambda: layer(x)) / MIB
                row[f"{mode}_branch_saved_mib"] = saved_bytes(lambda: layer.basis_branch(x)) / MIB
    return row


def _sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_fwd_bwd(layer, x, device, repeats: int, warmup: int = 2) -> tuple[float, float | None]:
    """Median fwd+bwd milliseconds, and peak CUDA MiB above the starting allocation (``None`` on CPU)."""
    grad = None
    for _ in range(warmup):
        y = layer(x)
        grad = torch.ones_like(y) if grad is None else grad
        y.backward(grad)
    _sync(device)
    peak = None
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    times = []
    for _ in range(repeats):
        x.grad = None
        t0 = time.perf_counter()
        layer(x).backward(grad)
        _sync(device)
        times.append((time.perf_counter() - t0) * 1e3)
    if device.type == "cuda":
        peak = (torch.cuda.max_memory_allocated(device) - base) / MIB
    return statistics.median(times), peak


def timing_rows(family: str, shape_name: str, device, modes, repeats: int, scale: float) -> dict:
    shape = SHAPES[shape_name]
    layer, x = _layer(family, shape, device), _input(shape, device, scale)
    row = {"time_input_shape": list(x.shape)}
    for mode in modes:
        run_layer = layer
        env = "fused" if mode == "fused" else "eager"
        try:
            with _Mode(env):
                if mode == "compile":
                    torch._dynamo.reset()
                    run_layer = torch.compile(layer)
                ms, peak = time_fwd_bwd(run_layer, x, device, repeats)
        except Exception as err:  # noqa: BLE001  (a benchmark row records why a column is missing)
            row[f"{mode}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
            continue
        row[f"{mode}_ms"] = ms
        if peak is not None:
            row[f"{mode}_peak_mib"] = peak
    return row


def bandwidth_row(family: str, shape_name: str, device, repeats: int) -> dict:
    """CUDA only: GB/s of the Triton expansion forward (read x, write C·P channels) against a plain copy."""
    from kanseg.kernels.triton_expander import TritonExpander

    shape = SHAPES[shape_name]
    layer, x = _layer(family, shape, device), _input(shape, device).detach()
    expander = TritonExpander(layer.basis, [], torch.float32)

    def bench(fn):
        fn()
        torch.cuda.synchronize(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            fn()
        torch.cuda.synchronize(device)
        return (time.perf_counter() - t0) / repeats

    out = expander.forward(x, None, [])
    moved = x.numel() * 4 + out.numel() * 4
    seconds = bench(lambda: expander.forward(x, None, []))
    big = torch.empty(moved // 8, device=device)
    copy_seconds = bench(lambda: big.clone())
    return {"expand_gbps": moved / seconds / 1e9, "copy_gbps": 2 * big.numel() * 4 / copy_seconds / 1e9}


def device_name(device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    try:
        with open("/proc/cpuinfo") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        model = platform.processor() or platform.machine() or "cpu"
    return f"{model} ({os.cpu_count()} cores)"


def write_json(path: Path, payload: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def markdown(rows: list[dict]) -> str:
    cols = ["family", "shape", "input_mib", "plain_saved_mib", "eager_saved_mib", "fused_saved_mib",
            "fused_branch_saved_mib", "eager_ms", "compile_ms", "fused_ms", "eager_peak_mib", "fused_peak_mib",
            "expand_gbps", "copy_gbps"]
    cols = [c for c in cols if any(c in r for r in rows)]
    fmt = lambda v: f"{v:.1f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(fmt(r.get(c, "")) for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--families", nargs="+", default=list_families())
    parser.add_argument("--shapes", nargs="+", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--modes", nargs="+", default=list(MODES), choices=MODES)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--time-scale", type=float, default=1.0,
                        help="spatial size factor for the timed runs (CPU: e.g. 0.25); memory is always full size")
    parser.add_argument("--no-time", action="store_true", help="memory columns only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--note", default="", help="free text stored in the JSON (e.g. load on the machine)")
    # --- stage 2 (implicit GEMM): benchmarks/kernels_stage2.py --------------------------------------------------
    parser.add_argument("--stage2", action="store_true",
                        help="CUDA: stage 2 vs stage 1 vs cuDNN-on-expanded vs torch.compile (TFLOP/s, % of peak)")
    parser.add_argument("--stage2-table", action="store_true",
                        help="with --stage2: also re-measure kanseg/kernels/stage2_table.json (the dispatch table)")
    args = parser.parse_args(argv)
    if args.stage2:
        import kernels_stage2  # benchmarks/ is on sys.path when run as a script

        kernels_stage2.run(args.families, args.out.parent if args.out else Path(__file__).resolve().parent / "results",
                           args.stage2_table, args.note)
        return
    # --- end stage 2 ----------------------------------------------------------------------------------------------
    device = torch.device(args.device)
    name = device_name(device)
    rows = []
    for shape_name in args.shapes:
        for family in args.families:
            row = {"family": family, "shape": shape_name, **memory_rows(family, shape_name)}
            if not args.no_time:
                row.update(timing_rows(family, shape_name, device, args.modes, args.repeats, args.time_scale))
                if device.type == "cuda" and family in kernels.TRITON_FAMILIES:
                    row.update(bandwidth_row(family, shape_name, device, args.repeats))
            rows.append(row)
            print(json.dumps(row), flush=True)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or device.type
    out = args.out or Path(__file__).resolve().parent / "results" / f"kernels-{slug}.json"
    payload = {"device": name, "device_type": device.type, "torch": torch.__version__,
               "kanseg_kernels": "fused = Triton on CUDA, torch recompute on CPU", "shapes": SHAPES,
               "time_scale": args.time_scale, "repeats": args.repeats, "note": args.note, "rows": rows}
    write_json(out, payload)
    print(markdown(rows))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
