"""Per-family cost of one KAN conv layer next to a plain Conv + Norm + SiLU, measured in the same run.

2D: 64->64, 3x3, B=8, 64x64.   3D: 16->16, 3x3x3, B=2, 32^3.
Columns: parameters, fwd+bwd time (median of --repeats), bytes saved for backward (saved_tensors_hooks), and the
ratio of saved bytes to the input's bytes. Writes benchmarks/results/layers-<device>.json and prints a table.

    python benchmarks/layers.py [--device cpu|cuda] [--families gram,rbf] [--repeats 3] [--kernels eager|auto]
"""

from __future__ import annotations

import argparse
import os
import sys
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


def measure(name: str, layer: nn.Module, x: torch.Tensor, repeats: int) -> dict:
    params = sum(p.numel() for p in layer.parameters())
    xx = x.detach().requires_grad_()
    saved = saved_bytes(lambda: layer(xx))
    seconds = time_fwd_bwd(layer, x, repeats=repeats)
    return {"layer": name, "params": params, "fwd_bwd_ms": round(seconds * 1e3, 2),
            "saved_MiB": round(saved / 2**20, 2), "saved_over_input": round(saved / (x.numel() * x.element_size()), 2)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--families", default=",".join(list_families() + ["gram-bottleneck"]))
    ap.add_argument("--cases", default="2d,3d")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--kernels", default=os.environ.get("KANSEG_KERNELS", "eager"),
                    help="KANSEG_KERNELS mode for the KAN layers (eager = reference-style autograd)")
    args = ap.parse_args()
    os.environ["KANSEG_KERNELS"] = args.kernels
    device = torch.device(args.device)
    results = {"device": device_name(device), "torch": torch.__version__, "kernels": args.kernels, "cases": {}}
    for case in args.cases.split(","):
        cfg = CASES[case]
        nd, c = cfg["nd"], cfg["channels"]
        x = torch.randn(cfg["batch"], c, *([cfg["size"]] * nd), device=device)
        rows = [measure("conv+norm+silu", plain_layer(nd, c).to(device), x, args.repeats)]
        for fam in args.families.split(","):
            layer = create_kan_conv(fam, nd, c, c, 3, padding=1).to(device)
            rows.append(measure(fam, layer, x, args.repeats))
            del layer
        base = rows[0]
        for r in rows:
            r["time_vs_conv"] = round(r["fwd_bwd_ms"] / base["fwd_bwd_ms"], 2)
            r["saved_vs_conv"] = round(r["saved_MiB"] / base["saved_MiB"], 2)
        results["cases"][case] = {**cfg, "rows": rows}
        print(f"\n{case}: {c}->{c} 3^{nd}, B={cfg['batch']}, {cfg['size']}^{nd}  on {results['device']}  "
              f"(kernels={args.kernels})")
        print(f"{'layer':18s} {'params':>9s} {'fwd+bwd ms':>11s} {'x conv':>7s} {'saved MiB':>10s} "
              f"{'x input':>8s} {'x conv':>7s}")
        for r in rows:
            print(f"{r['layer']:18s} {r['params']:9d} {r['fwd_bwd_ms']:11.1f} {r['time_vs_conv']:7.2f} "
                  f"{r['saved_MiB']:10.1f} {r['saved_over_input']:8.2f} {r['saved_vs_conv']:7.2f}")
    path = write_json(f"layers-{device_slug(device)}.json", results)
    print(f"\nwrote {path}")


if __name__ == "__main__":
    main()
