"""Per-family cost of one KAN conv layer next to a plain Conv + Norm + SiLU, measured in the same run.

2D: 64->64, 3x3, B=8, 64x64.   3D: 16->16, 3x3x3, B=2, 32^3.
Columns: parameters, fwd+bwd time (median of --repeats) and bytes saved for backward (saved_tensors_hooks) under
each ``--modes`` entry (KANSEG_KERNELS: ``eager`` = the reference layers, ``fused`` = the memory-saving path, on the
torch backend also the lean layout of kanseg.kan.lean), and the ratio to the plain layer. The plain layer is timed
again before every KAN layer and its median is the yardstick, so a load change during the run shows up in
``conv_ms_range`` instead of skewing the ratios. Writes benchmarks/results/layers-<device>.json (or --out).

    python benchmarks/layers.py [--device cpu|cuda] [--families gram,rbf] [--repeats 5] [--modes eager,fused]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, device_slug, saved_bytes, time_fwd_bwd, write_json  # noqa: E402

from kanseg.kan import create_kan_conv, list_families  # noqa: E402
from kanseg.kan.factories import conv_class, get_norm  # noqa: E402

CASES = {"2d": dict(nd=2, channels=64, batch=8, size=64), "3d": dict(nd=3, channels=16, batch=2, size=32)}


def plain_layer(nd: int, c: int) -> nn.Module:
    return nn.Sequential(conv_class(nd)(c, c, 3, padding=1, bias=False), get_norm("instance", nd, c), nn.SiLU())


def measure(layer: nn.Module, x: torch.Tensor, repeats: int, mode: str) -> tuple[float, int, float | None]:
    """(fwd+bwd milliseconds, bytes saved for backward, compile seconds or None) of ``layer`` on ``x`` under
    KANSEG_KERNELS=``mode``; ``compile``: ``torch.compile(layer)`` under ``auto``, its first call timed apart."""
    compile_s = None
    if mode == "compile":
        os.environ["KANSEG_KERNELS"] = "auto"
        torch._dynamo.reset()
        layer = torch.compile(layer)
        t0 = time.perf_counter()
        layer(x.detach().requires_grad_()).float().sum().backward()
        compile_s = time.perf_counter() - t0
    else:
        os.environ["KANSEG_KERNELS"] = mode
    xx = x.detach().requires_grad_()
    saved = saved_bytes(lambda: layer(xx))
    return time_fwd_bwd(layer, x, repeats=repeats) * 1e3, saved, compile_s


def row(name: str, layer: nn.Module, x: torch.Tensor, repeats: int, modes: list[str]) -> dict:
    out = {"layer": name, "params": sum(p.numel() for p in layer.parameters())}
    for i, mode in enumerate(modes):
        ms, saved, compile_s = measure(layer, x, repeats, mode)
        key = "" if i == 0 else f"{mode}_"
        out[f"{key}fwd_bwd_ms"] = round(ms, 2)
        out[f"{key}saved_MiB"] = round(saved / 2**20, 2)
        if compile_s is not None:
            out["compile_s"] = round(compile_s, 1)
        if i == 0:
            out["saved_over_input"] = round(saved / (x.numel() * x.element_size()), 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--families", default=",".join(list_families() + ["gram-bottleneck"]))
    ap.add_argument("--cases", default="2d,3d")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--modes", default="eager,fused",
                    help="KANSEG_KERNELS modes, comma-separated (plus 'compile': torch.compile of the layer under "
                         "auto); the first is the main column (eager = reference)")
    ap.add_argument("--out", default=None, help="result file name under benchmarks/results/")
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. what else ran)")
    args = ap.parse_args()
    modes = args.modes.split(",")
    device = torch.device(args.device)
    results = {"device": device_name(device), "torch": torch.__version__, "kernels": modes[0], "modes": modes,
               "repeats": args.repeats, "note": args.note, "cases": {}}
    for case in args.cases.split(","):
        cfg = CASES[case]
        nd, c = cfg["nd"], cfg["channels"]
        x = torch.randn(cfg["batch"], c, *([cfg["size"]] * nd), device=device)
        plain = plain_layer(nd, c).to(device)
        conv_ms = []
        rows = []
        for fam in args.families.split(","):
            conv_ms.append(measure(plain, x, args.repeats, modes[0])[0])
            layer = create_kan_conv(fam, nd, c, c, 3, padding=1).to(device)
            rows.append(row(fam, layer, x, args.repeats, modes))
            del layer
        base = row("conv+norm+silu", plain, x, args.repeats, modes[:1])
        conv_ms.append(base["fwd_bwd_ms"])
        base["fwd_bwd_ms"] = round(statistics.median(conv_ms), 2)
        rows.insert(0, base)
        for r in rows:
            for key in [k for k in list(r) if k.endswith("fwd_bwd_ms")]:
                r[key.replace("fwd_bwd_ms", "time_vs_conv")] = round(r[key] / base["fwd_bwd_ms"], 2)
            for key in [k for k in list(r) if k.endswith("saved_MiB")]:
                r[key.replace("saved_MiB", "saved_vs_conv")] = round(r[key] / base["saved_MiB"], 2)
        results["cases"][case] = {**cfg, "conv_ms_range": [round(min(conv_ms), 2), round(max(conv_ms), 2)],
                                  "rows": rows}
        print(f"\n{case}: {c}->{c} 3^{nd}, B={cfg['batch']}, {cfg['size']}^{nd}  on {results['device']}  "
              f"(plain conv {min(conv_ms):.1f}-{max(conv_ms):.1f} ms over the run)")
        head = f"{'layer':18s} {'params':>9s}" + "".join(f" {m + ' ms':>11s} {'x conv':>7s} {'MiB':>8s}" for m in modes)
        print(head)
        for r in rows:
            cells = ""
            for i, m in enumerate(modes):
                key = "" if i == 0 else f"{m}_"
                if f"{key}fwd_bwd_ms" in r:
                    cells += (f" {r[key + 'fwd_bwd_ms']:11.1f} {r[key + 'time_vs_conv']:7.2f}"
                              f" {r[key + 'saved_MiB']:8.1f}")
            print(f"{r['layer']:18s} {r['params']:9d}{cells}")
    path = write_json(args.out or f"layers-{device_slug(device)}.json", results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
