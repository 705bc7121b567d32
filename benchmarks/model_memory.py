"""Activation memory of one training step of a whole model: eager reference layers vs the fused path.

Bytes autograd saves for backward during the forward pass (saved_tensors_hooks), plus fwd+bwd time, for
``KANSEG_KERNELS=eager`` and ``fused`` in the same run. Spec target: a ``gram`` U-Net keeps at least 3x less
activation memory fused than eager (CPU and GPU), and trains at least 2x faster on GPU.

With ``--compile`` a third column: ``torch.compile`` of the model (KANSEG_KERNELS=auto, inductor), its one-off
compile time (first step) and its saved bytes (inductor's partitioner decides what to keep and what to recompute).

    python benchmarks/model_memory.py [--models unet-gram,unet-conv] [--size 128] [--batch 2] [--device cpu] [--compile]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, device_slug, saved_bytes, time_fwd_bwd, write_json  # noqa: E402

from kanseg.models import create_model  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--models", default="unet-gram,unet-gram-bottleneck,unet-conv")
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--note", default="", help="free text stored in the JSON (e.g. what else ran)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile(model) (KANSEG_KERNELS=auto)")
    args = ap.parse_args()
    device = torch.device(args.device)
    x = torch.randn(args.batch, 3, args.size, args.size, device=device)
    rows = []
    for name in args.models.split(","):
        torch.manual_seed(0)
        model = create_model(name, spatial_dims=2, in_channels=3, out_channels=1).to(device).train()
        row = {"model": name, "params": sum(p.numel() for p in model.parameters())}
        for mode in ("eager", "fused"):
            os.environ["KANSEG_KERNELS"] = mode
            row[f"{mode}_saved_MiB"] = round(saved_bytes(lambda: model(x.requires_grad_())) / 2**20, 1)
            row[f"{mode}_ms"] = round(time_fwd_bwd(model, x, repeats=args.repeats) * 1e3, 1)
        row["saved_ratio"] = round(row["eager_saved_MiB"] / row["fused_saved_MiB"], 2)
        row["time_ratio"] = round(row["eager_ms"] / row["fused_ms"], 2)
        if args.compile:
            os.environ["KANSEG_KERNELS"] = "auto"
            torch._dynamo.reset()
            compiled = torch.compile(model)
            t0 = time.perf_counter()
            compiled(x.requires_grad_()).float().sum().backward()
            row["compile_s"] = round(time.perf_counter() - t0, 1)
            row["compile_saved_MiB"] = round(saved_bytes(lambda: compiled(x.requires_grad_())) / 2**20, 1)
            row["compile_ms"] = round(time_fwd_bwd(compiled, x, repeats=args.repeats) * 1e3, 1)
        rows.append(row)
        print(row, flush=True)
    result = {"device": device_name(device), "torch": torch.__version__, "batch": args.batch, "note": args.note,
              "input": [3, args.size, args.size], "rows": rows}
    print(f"\n{'model':22s} {'params':>9s} {'eager MiB':>10s} {'fused MiB':>10s} {'ratio':>6s} "
          f"{'eager ms':>9s} {'fused ms':>9s}   on {result['device']}, B={args.batch}, 3x{args.size}^2")
    for r in rows:
        print(f"{r['model']:22s} {r['params']:9d} {r['eager_saved_MiB']:10.1f} {r['fused_saved_MiB']:10.1f} "
              f"{r['saved_ratio']:6.2f} {r['eager_ms']:9.1f} {r['fused_ms']:9.1f}")
    print(f"wrote {write_json(f'model-memory-{device_slug(device)}.json', result)}")


if __name__ == "__main__":
    main()
