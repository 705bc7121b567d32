"""DDP through the real entry point: ``torchrun --nproc-per-node 2 -m kanseg train`` on CPU (gloo, loopback)."""

import json
import os
import socket
import subprocess
import sys

import pytest

from kanseg.engine import evaluate_run

TIMEOUT_S = 240


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(run_dir, demo_root, epochs, *settings):
    """``torchrun --nproc-per-node 2 -m kanseg train`` of the tiny demo config; returns its stdout."""
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--nnodes", "1",
           "--master-addr", "127.0.0.1", "--master-port", str(_free_port()),
           "-m", "kanseg", "train", "--dataset", "demo", "--data-root", str(demo_root), "--image-size", "32",
           "--epochs", str(epochs), "--batch-size", "4", "--device", "cpu", "--out", str(run_dir),
           "--set", "model.kwargs={base_width: 4, depth: 2}", "--set", "optim.lr=0.01",
           *(arg for s in settings for arg in ("--set", s))]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "NO_ALBUMENTATIONS_UPDATE": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=TIMEOUT_S, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return proc.stdout


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory, demo_root):
    run_dir = tmp_path_factory.mktemp("ddp") / "run"
    return run_dir, _torchrun(run_dir, demo_root, 2)


def test_ranks_end_with_identical_weights(ddp_run):
    run_dir, stdout = ddp_run
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run"]["world_size"] == 2
    digests = summary["run"]["weights_sha1_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    assert "2 process(es)" in stdout
    assert stdout.count("epoch 1/2") == 1  # rank 0 alone prints and writes
    assert len((run_dir / "metrics.jsonl").read_text().splitlines()) == 2


def test_gathered_metrics_equal_single_process_evaluation(ddp_run):
    run_dir, _ = ddp_run
    ddp = json.loads((run_dir / "summary.json").read_text())["val"]  # best.pt, scored by both ranks
    last_epoch = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[-1])["val"]
    single_last = evaluate_run(run_dir, subset="val", checkpoint="last", device="cpu")["report"]
    assert single_last["per_image"]["dice"]["mean"] == pytest.approx(last_epoch["dice"], abs=1e-6)
    assert single_last["global"]["iou"] == pytest.approx(last_epoch["global_iou"], abs=1e-6)
    assert single_last["ukan_compat"]["iou"] == pytest.approx(last_epoch["ukan_iou"], abs=1e-6)
    single_best = evaluate_run(run_dir, subset="val", checkpoint="best", device="cpu")
    assert [c["id"] for c in single_best["cases"]] == [c["id"] for c in ddp["cases"]]
    for mine, theirs in zip(single_best["cases"], ddp["cases"]):
        for key in ("dice", "iou", "hd95", "tp", "fp", "fn", "model_intersection", "model_union"):
            assert mine[key] == pytest.approx(theirs[key], abs=1e-6), (mine["id"], key)


def test_accumulation_ema_and_early_stop_under_ddp(tmp_path, demo_root):
    """Accumulation (DDP synchronises the group's last backward), EMA weights (same on both ranks) and early
    stopping (both ranks stop together after epoch 2 of 4): equal weights, best.pt = what the ranks scored."""
    run_dir = tmp_path / "run"
    _torchrun(run_dir, demo_root, 4, "optim.accumulate=2", "optim.ema_decay=0.9", "early_stop.patience=1",
              "early_stop.min_delta=1", "monitor=dice")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run"]["stopped_early"]["epoch"] == 2
    digests = summary["run"]["weights_sha1_per_rank"]
    assert len(digests) == 2 and digests[0] == digests[1]
    best = json.loads((run_dir / "metrics.jsonl").read_text().splitlines()[summary["run"]["best_epoch"] - 1])["val"]
    single = evaluate_run(run_dir, subset="val", checkpoint="best", device="cpu")["report"]
    assert single["per_image"]["dice"]["mean"] == pytest.approx(best["dice"], abs=1e-6)
