"""Conv backward on CPU: torch's ``aten.convolution_backward`` against the forward-kernel route
(``kanseg.kernels.conv_backward``: conv_transpose for dL/dx, a batch/channel-swapped conv for dL/dw).

Shapes are those of U-Nets of base width 8-32 level by level (3D: B=2, 40x56x40 at full resolution, halved per
level; 2D: B=8, 128x128), channel counts 8..128, stride 1 and 2, plus the 1-channel stem. Both routes are timed interleaved in the
same run (median of --repeats), so the ratio is meaningful even when absolute times are noisy. Writes
benchmarks/results/conv-backward-<device>.json; --table also rewrites kanseg/kernels/conv_backward_table.json,
the measured rule ``KANSEG_CONV_BACKWARD=auto`` reads.

    python benchmarks/conv_backward.py [--repeats 5] [--dims 2,3] [--table]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, write_json  # noqa: E402

from kanseg.kernels.conv_backward import TABLE_PATH, conv_backward  # noqa: E402

LEVELS = {3: dict(batch=2, size=(40, 56, 40)), 2: dict(batch=8, size=(128, 128))}
CHANNELS = [(1, 8), (1, 16), (8, 8), (8, 16), (16, 16), (16, 32), (32, 32), (32, 64), (64, 64), (64, 128),
            (128, 128), (32, 8), (64, 16), (128, 32)]  # the last three: KAN basis convs (C * (degree + 1) -> C)


def shapes(dims: int):
    """(c_in, c_out, stride, spatial size): every channel pair at the U-Net levels where it can occur (a level-l
    feature map has at least 8 * 2^l channels and at most 32 * 2^l), stride 1, and stride 2 for equal widths."""
    base = LEVELS[dims]
    for c_in, c_out in CHANNELS:
        for level in range(4):
            if min(c_in, c_out) > 32 * 2**level or max(c_in, c_out) < 8 * 2**level:
                continue
            size = tuple(max(2, s >> level) for s in base["size"])
            yield c_in, c_out, 1, size
            if c_in == c_out:
                yield c_in, min(2 * c_out, 256), 2, size


def time_pair(x, w, stride, padding, repeats: int) -> tuple[float, float]:
    n = x.dim() - 2
    y = torch.ops.aten.convolution(x, w, None, [stride] * n, [padding] * n, [1] * n, False, [0] * n, 1)
    gy = torch.randn_like(y)

    def torch_route():
        torch.ops.aten.convolution_backward(gy, x, w, None, [stride] * n, [padding] * n, [1] * n, False, [0] * n, 1,
                                            [True, True, False])

    def forward_route():
        conv_backward(gy, x, w, (stride,) * n, (padding,) * n, (1,) * n, 1, True, True)

    times = {torch_route: [], forward_route: []}
    for fn in times:  # warm-up
        fn()
    for _ in range(repeats):
        for fn in times:
            t0 = time.perf_counter()
            fn()
            times[fn].append(time.perf_counter() - t0)
    med = {fn: sorted(t)[len(t) // 2] for fn, t in times.items()}
    return med[torch_route], med[forward_route]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--dims", default="3,2")
    parser.add_argument("--table", action="store_true", help="rewrite kanseg/kernels/conv_backward_table.json")
    args = parser.parse_args()
    torch.manual_seed(0)
    rows = []
    print(f"{'dims':>4} {'c_in':>5} {'c_out':>5} {'stride':>6} {'size':>14} {'torch ms':>9} {'forward ms':>10} {'speedup':>7}")
    for dims in (int(d) for d in args.dims.split(",")):
        batch = LEVELS[dims]["batch"]
        for c_in, c_out, stride, size in shapes(dims):
            x = torch.randn(batch, c_in, *size)
            w = torch.randn(c_out, c_in, *([3] * dims)) * 0.1
            t_torch, t_fwd = time_pair(x, w, stride, 1, args.repeats)
            row = dict(spatial_dims=dims, in_channels=c_in, out_channels=c_out, kernel_size=[3] * dims,
                       stride=[stride] * dims, groups=1, voxels=batch * int(torch.tensor(size).prod()),
                       batch=batch, size=list(size), torch_ms=round(t_torch * 1e3, 2),
                       forward_ms=round(t_fwd * 1e3, 2),
                       speedup=round(t_torch / t_fwd, 3))
            rows.append(row)
            print(f"{dims:>4} {c_in:>5} {c_out:>5} {stride:>6} {'x'.join(map(str, size)):>14} {row['torch_ms']:>9} "
                  f"{row['forward_ms']:>10} {row['speedup']:>7}", flush=True)
    device = device_name(torch.device("cpu"))
    payload = {"device": device, "torch": torch.__version__, "repeats": args.repeats, "entries": rows}
    path = write_json("conv-backward-cpu.json", payload)
    print(f"saved {path}")
    if args.table:
        keep = ("spatial_dims", "in_channels", "out_channels", "kernel_size", "stride", "groups", "voxels", "speedup")
        table = {"device": device, "torch": torch.__version__,
                 "note": "measured by benchmarks/conv_backward.py --table; read by kanseg.kernels.conv_backward",
                 "entries": [{k: r[k] for k in keep} for r in rows]}
        TABLE_PATH.write_text(json.dumps(table, indent=1) + "\n")
        print(f"table: {TABLE_PATH}")


if __name__ == "__main__":
    main()
