"""Ctrl-C during ``kanseg predict`` and stale temporary files in its output folder."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np

from kanseg.atomic import is_stale_temp
from kanseg.data.io import write_image_atomic
from kanseg.inference import predict

REPO = Path(__file__).resolve().parents[2]


def images(folder: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    return [write_image_atomic(folder / f"img{k}.png", rng.integers(0, 255, (20, 24, 3), dtype=np.uint8))
            for k in range(n)]


def test_ctrl_c_during_predict_says_what_was_finished(tmp_path, checkpoint_2d):
    inputs, out = images(tmp_path / "in", 3), tmp_path / "out"
    command = [sys.executable, "-m", "tests.signal_child", "SIGINT", "predict", "2", "--",
               "predict", "-c", str(checkpoint_2d), str(tmp_path / "in"), "-o", str(out), "--device", "cpu"]
    proc = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == (f"interrupted: prediction interrupted (Ctrl-C) at {inputs[1]}: 1 of 3 inputs finished "
                           f"(outputs in {out}), 0 failed, 2 not predicted; run kanseg predict again on the inputs "
                           "not predicted\n")
    assert proc.stdout.startswith(f"[1/3] {inputs[0]} -> {out / 'img0_mask.png'}")
    assert sorted(p.name for p in out.iterdir()) == ["img0_mask.png"]


def test_predict_removes_stale_temps_of_its_output_folder(tmp_path, checkpoint_2d):
    (image,) = images(tmp_path / "in", 1)
    out = tmp_path / "out"
    out.mkdir()
    stale, foreign = out / ".img0_mask.png.ab12cd34.tmp.png", out / "notes.tmp"
    other_job = out / ".img0_x_mask.png.k3j9x_2a.tmp.png"  # a write in progress of another batch: not ours
    for path in (stale, foreign, other_job):
        path.write_bytes(b"half a png")
    assert predict(checkpoint_2d, image, out, device="cpu").ok
    assert not stale.exists() and foreign.exists() and other_job.exists()
    assert [p.name for p in out.iterdir() if is_stale_temp(p)] == [other_job.name]
