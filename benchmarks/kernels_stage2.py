"""Stage 2 (implicit-GEMM KAN conv) against stage 1 (Triton expand + cuDNN), cuDNN on a pre-expanded tensor (the
GEMM alone: a lower bound for stage 1) and ``torch.compile`` of the eager basis branch. CUDA only.

Per family, layer shape (``benchmarks/kernels.py``'s: 2D B=8 64→64 128², 3D B=2 32→32 64³; 3×3(×3), padding 1) and
dtype (fp32 with tf32 as cuDNN uses it, bf16 autocast): basis-branch fwd+bwd milliseconds, achieved TFLOP/s
(3 × 2·B·S'·C_out·(C_in/G)·P·k^d: forward, input and weight gradients) and fraction of peak (the card's dense spec
peak where known, and a large matmul measured in the same run). Spec targets: stage 2 ≥ 30% of bf16 peak on 3D layers
with ≥ 32 channels; ≥ 1.3× faster than ``torch.compile`` on 2D layers; never slower than stage 1 where chosen.

``--stage2-table`` also times both stages over a grid of layer shapes and rewrites
``kanseg/kernels/stage2_table.json`` (rows of other GPUs are kept): the dispatcher's measured choice.

    python benchmarks/kernels.py --stage2 [--stage2-table]
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from pathlib import Path

import torch

from kanseg import kernels
from kanseg.kan import create_kan_conv
from kanseg.kernels.stage2_table import TABLE_PATH

SHAPES = {"2d": dict(nd=2, batch=8, channels=64, size=128), "3d": dict(nd=3, batch=2, channels=32, size=64)}
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
MODES = ("stage2", "stage1", "cudnn_expanded", "compile")
#: dense tensor-core peaks (TFLOP/s) from the vendors' sheets: bf16, and tf32 for fp32 convs.
SPEC_PEAK = {"H100 80GB HBM3": (989.0, 494.0), "H100 NVL": (835.0, 418.0), "H100 PCIe": (756.0, 378.0),
             "H200": (989.0, 494.0), "A100": (312.0, 156.0), "L40S": (362.0, 183.0), "RTX 4090": (165.0, 82.6)}
#: the shapes the table is measured on (batch fixed per dims); layers elsewhere stay on stage 1.
TABLE_GRID = {2: dict(batch=8, channels=(16, 32, 64, 128), sizes=(64, 128, 256)),
              3: dict(batch=2, channels=(16, 32, 64, 128), sizes=(16, 32, 64))}


def spec_peak(device_name: str, dtype: str) -> float | None:
    for key, (bf16, tf32) in SPEC_PEAK.items():
        if key in device_name:
            return bf16 if dtype == "bfloat16" else tf32
    return None


def measured_peak(device, dtype: torch.dtype, n: int = 8192) -> float:
    """TFLOP/s of an n³ matmul in ``dtype`` (tf32 allowed for fp32)."""
    from triton.testing import do_bench

    a, b = (torch.randn(n, n, device=device, dtype=dtype) for _ in range(2))
    with _tf32():
        ms = do_bench(lambda: a @ b)
    return 2 * n**3 / ms / 1e9


class _tf32:
    """tf32 matmuls on (cuDNN convs use tf32 by default already)."""

    def __enter__(self):
        self.old = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True

    def __exit__(self, *exc):
        torch.backends.cuda.matmul.allow_tf32 = self.old


def branch_flops(layer, x: torch.Tensor, y: torch.Tensor) -> float:
    """FLOPs of the basis conv's forward + input gradient + weight gradient."""
    w = layer.basis_conv.weight
    return 3 * 2 * y.numel() * w[0].numel()


def _branch_fn(layer, mode: str):
    if mode == "stage2":
        return lambda x: kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="implicit_gemm")
    if mode == "stage1":
        return lambda x: kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="triton")
    if mode == "compile":
        torch._dynamo.reset()
        return torch.compile(lambda x: layer.basis_conv(layer.expand(x)))
    raise ValueError(mode)


def time_branch(layer, x: torch.Tensor, dtype: torch.dtype, mode: str) -> tuple[float, float]:
    """``(median fwd+bwd ms, FLOPs)`` of the basis branch in ``mode`` under ``dtype`` autocast (none for fp32)."""
    from triton.testing import do_bench

    autocast = torch.autocast("cuda", dtype=dtype, enabled=dtype != torch.float32)
    if mode == "cudnn_expanded":
        with torch.no_grad(), autocast:
            expanded = layer.expand(x).to(dtype).detach().requires_grad_()
        fn = layer.basis_conv
        inp = expanded
    else:
        fn, inp = _branch_fn(layer, mode), x
    with autocast:
        y = fn(inp)
    grad = torch.randn_like(y)

    def step():
        with autocast:
            out = fn(inp)
        out.backward(grad)

    ms = do_bench(step, grad_to_none=[inp, *layer.parameters()])
    return ms, branch_flops(layer, x, y)


def benchmark_rows(families, device, repeats_note: str = "") -> list[dict]:
    name = torch.cuda.get_device_name(device)
    peaks = {d: measured_peak(device, dt) for d, dt in DTYPES.items()}
    rows = []
    for shape_name, shape in SHAPES.items():
        for family in families:
            for dname, dtype in DTYPES.items():
                torch.manual_seed(0)
                c = shape["channels"]
                layer = create_kan_conv(family, shape["nd"], c, c, 3, padding=1).to(device)
                x = torch.randn(shape["batch"], c, *[shape["size"]] * shape["nd"], device=device, requires_grad=True)
                row = {"family": family, "shape": shape_name, "dtype": dname, "spec_peak_tflops": spec_peak(name, dname),
                       "matmul_peak_tflops": peaks[dname]}
                for mode in MODES:
                    try:
                        ms, flops = time_branch(layer, x, dtype, mode)
                    except Exception as err:  # noqa: BLE001  (a row records why a column is missing)
                        row[f"{mode}_error"] = f"{type(err).__name__}: {str(err).splitlines()[0][:200]}"
                        continue
                    row[f"{mode}_ms"] = ms
                    row[f"{mode}_tflops"] = flops / ms / 1e9
                    if row["spec_peak_tflops"]:
                        row[f"{mode}_frac_spec_peak"] = row[f"{mode}_tflops"] / row["spec_peak_tflops"]
                    row[f"{mode}_frac_matmul_peak"] = row[f"{mode}_tflops"] / peaks[dname]
                if "stage2_ms" in row and "stage1_ms" in row:
                    row["stage2_speedup_vs_stage1"] = row["stage1_ms"] / row["stage2_ms"]
                if "stage2_ms" in row and "compile_ms" in row:
                    row["stage2_speedup_vs_compile"] = row["compile_ms"] / row["stage2_ms"]
                rows.append(row)
                print(json.dumps(row), flush=True)
    return rows


def table_rows(families, device) -> list[dict]:
    """Both stages timed over :data:`TABLE_GRID`: rows of ``stage2_table.json``."""
    name = torch.cuda.get_device_name(device)
    rows = []
    for nd, grid in TABLE_GRID.items():
        for family in families:
            for dname, dtype in DTYPES.items():
                for c in grid["channels"]:
                    for size in grid["sizes"]:
                        torch.manual_seed(0)
                        layer = create_kan_conv(family, nd, c, c, 3, padding=1).to(device)
                        x = torch.randn(grid["batch"], c, *[size] * nd, device=device, requires_grad=True)
                        try:
                            ms = {m: time_branch(layer, x, dtype, m)[0] for m in ("stage1", "stage2")}
                        except torch.cuda.OutOfMemoryError:
                            torch.cuda.empty_cache()
                            continue
                        rows.append({"device": name, "family": family, "spatial_dims": nd, "dtype": dname,
                                     "in_channels": c, "out_channels": c, "kernel_size": [3] * nd,
                                     "stride": [1] * nd, "dilation": [1] * nd, "groups": 1,
                                     "voxels": x.numel() // c, "stage1_ms": ms["stage1"], "stage2_ms": ms["stage2"]})
                        print(json.dumps(rows[-1]), flush=True)
    return rows


def _write_json(path: Path, payload: dict) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        json.dump(payload, f, indent=1)
    os.replace(tmp, path)


def write_table(rows: list[dict], device_name: str, path: Path = TABLE_PATH) -> None:
    """Replace this GPU's rows of the stage-2 table, keep the others."""
    table = json.loads(path.read_text()) if path.exists() else {"version": 1, "entries": []}
    table["entries"] = [r for r in table.get("entries", []) if r.get("device") != device_name] + rows
    table["note"] = "Measured by benchmarks/kernels.py --stage2 --stage2-table (basis branch fwd+bwd, median ms)."
    _write_json(path, table)


def run(families, out_dir: Path, with_table: bool, note: str = "") -> Path:
    if not torch.cuda.is_available():
        raise SystemExit("stage-2 benchmark needs a CUDA GPU (the Triton interpreter is not a benchmark)")
    device = torch.device("cuda")
    name = torch.cuda.get_device_name(device)
    families = [f for f in families if f in kernels.STAGE2_FAMILIES]
    rows = benchmark_rows(families, device)
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    out = out_dir / f"kernels-stage2-{slug}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    _write_json(out, {"device": name, "torch": torch.__version__, "shapes": SHAPES, "modes": list(MODES),
                      "note": note, "rows": rows})
    print(f"wrote {out}")
    if with_table:
        write_table(table_rows(families, device), name)
        print(f"wrote {TABLE_PATH}")
    return out
