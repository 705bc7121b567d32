"""Peak memory of `kanseg.inference.predict` on large NIfTI volumes (default 512x512x300).

For each case the parent writes a random int16 volume (uncompressed .nii) and a small 3D ``unet-conv``
checkpoint; a fresh subprocess measures its resident memory after imports and model loading
("baseline", /proc/self/status VmRSS), then predicts the volume and reads its peak RSS
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Memory is reported in MiB and in copies of the
volume as float32 (the model input), so "bounded by the window" reads as a small constant.

    python benchmarks/predict_memory.py [--shapes 512x512x300,256x256x150] [--roi 96] [--overlap 0.25]
                                        [--device cpu|cuda] [--tta]

Writes benchmarks/results/predict-memory-<device>.json and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import device_name, device_slug, write_json  # noqa: E402

MIB = 2**20


def current_rss() -> int:
    """Resident set size now, bytes (Linux); falls back to the peak elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return peak_rss()


def peak_rss() -> int:
    """Peak resident set size of this process, bytes (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def write_inputs(workdir: Path, shape: tuple[int, ...], depth: int, width: int) -> None:
    """Random int16 volume (uncompressed NIfTI) and a small 3D checkpoint, written by the parent process."""
    import nibabel as nib
    import numpy as np
    import torch

    from kanseg.checkpoint import save_checkpoint
    from kanseg.models import create_model

    torch.manual_seed(0)
    kwargs = {"spatial_dims": 3, "in_channels": 1, "out_channels": 1, "depth": depth, "base_width": width}
    save_checkpoint(workdir / "best.pt", model_name="unet-conv", model_kwargs=kwargs,
                    state_dict=create_model("unet-conv", **kwargs).state_dict(),
                    preprocessing={"spatial_dims": 3, "in_channels": 1, "image_size": None,
                                   "intensity": {"kind": "zscore"}})
    data = np.random.default_rng(0).integers(-1000, 2000, size=shape, dtype=np.int16)
    nib.save(nib.Nifti1Image(data, np.diag([0.7, 0.7, 1.5, 1.0])), workdir / "volume.nii")


def child(args: argparse.Namespace) -> dict:
    """One measurement (runs in its own process so ru_maxrss belongs to this case only)."""
    import numpy as np
    import torch

    from kanseg.inference import Predictor, predict

    shape = tuple(int(s) for s in args.shape.split("x"))
    work = Path(args.workdir)
    ckpt, volume = work / "best.pt", work / "volume.nii"
    predictor = Predictor.from_checkpoint(ckpt, roi_size=args.roi, overlap=args.overlap,
                                          sw_batch_size=args.sw_batch_size, tta=args.tta, device=args.device)
    baseline = current_rss()
    start = time.perf_counter()
    report = predict(predictor, volume, work / "out", progress=False)
    seconds = time.perf_counter() - start
    if not report.ok:
        raise SystemExit(report.failures[0].error)
    peak = peak_rss()
    volume_bytes = int(np.prod(shape)) * 4
    result = {
        "shape": list(shape),
        "roi": args.roi,
        "overlap": args.overlap,
        "sw_batch_size": args.sw_batch_size,
        "tta": args.tta,
        "model": f"unet-conv depth={args.depth} base_width={args.width}",
        "volume_float32_MiB": round(volume_bytes / MIB, 1),
        "baseline_rss_MiB": round(baseline / MIB, 1),
        "peak_rss_MiB": round(peak / MIB, 1),
        "peak_minus_baseline_MiB": round((peak - baseline) / MIB, 1),
        "copies_of_volume": round((peak - baseline) / volume_bytes, 2),
        "seconds": round(seconds, 1),
    }
    if args.device.startswith("cuda"):
        result["cuda_peak_MiB"] = round(torch.cuda.max_memory_allocated() / MIB, 1)
    return result


def marginal_cost(rows: list[dict]) -> dict:
    """Split the extra memory into a constant (windows, model) and copies of the volume, from the two
    largest shapes: ``extra = constant + copies * volume``."""
    if len(rows) < 2:
        return {}
    small, large = sorted(rows, key=lambda r: r["volume_float32_MiB"])[-2:]
    copies = (large["peak_minus_baseline_MiB"] - small["peak_minus_baseline_MiB"]) / (
        large["volume_float32_MiB"] - small["volume_float32_MiB"])
    constant = large["peak_minus_baseline_MiB"] - copies * large["volume_float32_MiB"]
    return {"marginal_copies_of_volume": round(copies, 2), "window_constant_MiB": round(constant, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", default="512x512x300", help="comma-separated XxYxZ volume shapes")
    parser.add_argument("--roi", type=int, default=96)
    parser.add_argument("--overlap", type=float, default=0.25)
    parser.add_argument("--sw-batch-size", type=int, default=2)
    parser.add_argument("--tta", action="store_true")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--depth", type=int, default=3)
    parser.add_argument("--width", type=int, default=4)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--shape", help=argparse.SUPPRESS)
    parser.add_argument("--workdir", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return

    import torch

    device = torch.device(args.device)
    rows = []
    for shape in args.shapes.split(","):
        with tempfile.TemporaryDirectory(prefix="kanseg-predict-memory-") as workdir:
            write_inputs(Path(workdir), tuple(int(s) for s in shape.split("x")), args.depth, args.width)
            cmd = [sys.executable, __file__, "--child", "--shape", shape, "--workdir", workdir,
                   "--roi", str(args.roi), "--overlap", str(args.overlap), "--sw-batch-size", str(args.sw_batch_size),
                   "--device", args.device, "--depth", str(args.depth), "--width", str(args.width)]
            cmd += ["--tta"] if args.tta else []
            out = subprocess.run(cmd, check=True, capture_output=True, text=True,
                                 env={**os.environ, "NO_ALBUMENTATIONS_UPDATE": "1"})
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(f"done {shape}", file=sys.stderr)
    payload = {"device": device_name(device), "torch_threads": torch.get_num_threads(),
               "command": "python " + " ".join(["benchmarks/predict_memory.py", *sys.argv[1:]]), "results": rows,
               **marginal_cost(rows)}
    path = write_json(f"predict-memory-{device_slug(device)}.json", payload)

    header = ["shape", "vol f32 MiB", "baseline MiB", "peak MiB", "peak-base MiB", "copies", "s"]
    print(f"{payload['device']}; roi {args.roi}^3, overlap {args.overlap}, tta {args.tta}")
    print(" | ".join(f"{h:>13}" for h in header))
    for r in rows:
        cells = ["x".join(map(str, r["shape"])), r["volume_float32_MiB"], r["baseline_rss_MiB"], r["peak_rss_MiB"],
                 r["peak_minus_baseline_MiB"], r["copies_of_volume"], r["seconds"]]
        print(" | ".join(f"{c!s:>13}" for c in cells))
    if "marginal_copies_of_volume" in payload:
        print(f"fit over the two largest shapes: {payload['window_constant_MiB']} MiB per-window constant + "
              f"{payload['marginal_copies_of_volume']} float32 copies of the volume")
    print(f"saved {path}")


if __name__ == "__main__":
    main()
