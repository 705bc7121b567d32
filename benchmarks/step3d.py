"""One 3D training step on CPU (forward, loss, backward, Adam), with torch's conv backward and with the
forward-kernel route (``KANSEG_CONV_BACKWARD=torch`` vs ``auto``), interleaved in the same run, plus where the
time of a step goes (torch.profiler, top operators) for each.

Default: two 1-channel 40x56x40 volumes (hippocampus-sized), 3 output classes, Dice+CE-like loss on logits.

    python benchmarks/step3d.py [--models NAME:WIDTH[:DEPTH],...] (depth 4 by default) [--repeats 5] [--profile]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, write_json  # noqa: E402

from kanseg.models import create_model  # noqa: E402



def make_step(model, x, y):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step():
        optimizer.zero_grad(set_to_none=True)
        out = model(x)
        out = out[0] if isinstance(out, (list, tuple)) else out
        torch.nn.functional.cross_entropy(out, y).backward()
        optimizer.step()

    return step


def profile_top(step, n: int = 8) -> list[dict]:
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)[:n]
    total = sum(e.self_cpu_time_total for e in prof.key_averages())
    return [{"op": e.key, "self_ms": round(e.self_cpu_time_total / 1e3, 1),
             "share": round(e.self_cpu_time_total / total, 3)} for e in events]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="unet-conv:16,unet-conv:8,unet-gram-bottleneck:8")
    ap.add_argument("--size", default="40,56,40")
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--routes", default="torch,auto", help="KANSEG_CONV_BACKWARD values to compare (first = baseline)")
    ap.add_argument("--profile", action="store_true", help="also record the top operators of one step per route")
    args = ap.parse_args()
    size = tuple(int(s) for s in args.size.split(","))
    routes = args.routes.split(",")
    torch.manual_seed(0)
    x = torch.randn(args.batch, 1, *size)
    y = torch.randint(0, 3, (args.batch, *size))
    rows = []
    for spec in args.models.split(","):
        name, width, depth = (spec.split(":") + ["4"])[:3]
        torch.manual_seed(0)
        model = create_model(name, spatial_dims=3, in_channels=1, out_channels=3, base_width=int(width),
                             depth=int(depth)).train()
        step = make_step(model, x, y)
        times = {r: [] for r in routes}
        for route in routes:  # warm-up
            os.environ["KANSEG_CONV_BACKWARD"] = route
            step()
        for _ in range(args.repeats):
            for route in routes:
                os.environ["KANSEG_CONV_BACKWARD"] = route
                t0 = time.perf_counter()
                step()
                times[route].append(time.perf_counter() - t0)
        med = {r: sorted(t)[len(t) // 2] for r, t in times.items()}
        row = {"model": name, "base_width": int(width), "depth": int(depth), "params": sum(p.numel() for p in model.parameters()),
               **{f"{r}_s": round(med[r], 3) for r in routes}, "speedup": round(med[routes[0]] / med[routes[-1]], 2)}
        if args.profile:
            for route in routes:
                os.environ["KANSEG_CONV_BACKWARD"] = route
                row[f"profile_{route}"] = profile_top(step)
        rows.append(row)
        print(f"{name}:{width}:{depth} ({row['params'] / 1e6:.2f} M): "
              + ", ".join(f"{r} {row[f'{r}_s']:.3f} s/step" for r in routes)
              + f"; {routes[0]} / {routes[-1]} = {row['speedup']:.2f}x", flush=True)
    os.environ.pop("KANSEG_CONV_BACKWARD", None)
    result = {"device": device_name(torch.device("cpu")), "torch": torch.__version__, "batch": args.batch,
              "input": [1, *size], "out_channels": 3, "routes": routes, "repeats": args.repeats, "rows": rows}
    print(f"wrote {write_json('step3d-cpu.json', result)}")


if __name__ == "__main__":
    main()
