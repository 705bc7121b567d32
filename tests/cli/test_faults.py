"""Killed and interrupted runs (kill -9 and Ctrl-C at chosen points, see tests/signal_child.py): what is
printed, the exit code, and what is (not) left in the run directory; then the documented way on."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from kanseg.atomic import is_stale_temp
from kanseg.checkpoint import load_checkpoint, save_checkpoint
from kanseg.cli import main

REPO = Path(__file__).resolve().parents[2]
TINY = ["--dataset", "demo", "--image-size", "32", "--batch-size", "8", "--device", "cpu",
        "--set", "model.kwargs={base_width: 4, depth: 2}"]


def signalled(sig: str, point: str, nth: int, *args) -> subprocess.CompletedProcess:
    """``kanseg ARGS`` in a child process that sends itself ``sig`` at the ``nth`` hit of ``point``."""
    command = [sys.executable, "-m", "tests.signal_child", sig, point, str(nth), "--", *map(str, args)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)


def kanseg(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code or 0, out.out, out.err


def epochs_logged(run: Path) -> list[int]:
    return [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()]


def temps(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if is_stale_temp(p))


def test_kill_before_the_first_checkpoint_leaves_no_dead_end(capsys, tmp_path, demo_root):
    run = tmp_path / "run"
    command = ["train", *TINY, "--data-root", demo_root, "--epochs", 1, "--out", run]
    proc = signalled("SIGKILL", "epoch", 1, *command)
    assert proc.returncode == -signal.SIGKILL
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "log.txt"]
    again = shutil.copytree(run, tmp_path / "again")
    # 1. the same command again takes the folder over
    code, out, err = kanseg(capsys, *command[:-1], again)
    assert code == 0, err
    assert f"note: {again} held a run that stopped before its first checkpoint; starting again" in out
    assert epochs_logged(again) == [1] and load_checkpoint(again / "last.pt")["epoch"] == 1
    # 2. --resume starts from epoch 0 with the saved config
    code, out, err = kanseg(capsys, "train", "--resume", run)
    assert code == 0, err
    assert "epoch 1/1 loss" in out and epochs_logged(run) == [1] and (run / "summary.json").is_file()
    assert "starting again" in (run / "log.txt").read_text()


def test_kill_inside_a_checkpoint_write_keeps_last_pt_and_resume_cleans_up(capsys, tmp_path, demo_root):
    run = tmp_path / "run"
    proc = signalled("SIGKILL", "save-last", 2, "train", *TINY, "--data-root", demo_root, "--epochs", 2, "--out", run)
    assert proc.returncode == -signal.SIGKILL
    (stale,) = temps(run)
    assert stale.startswith(".last.pt.") and stale.endswith(".tmp")
    assert (run / stale).stat().st_size > 0.9 * (run / "last.pt").stat().st_size  # checkpoint-sized
    assert load_checkpoint(run / "last.pt")["epoch"] == 1  # the previous checkpoint, intact
    code, out, err = kanseg(capsys, "train", "--resume", run)
    assert code == 0, err
    assert temps(run) == [] and epochs_logged(run) == [1, 2]
    assert load_checkpoint(run / "last.pt")["epoch"] == 2


def test_ctrl_c_during_training_says_where_and_how_to_continue(tmp_path, demo_root):
    run = tmp_path / "run"
    proc = signalled("SIGINT", "epoch", 2, "train", *TINY, "--data-root", demo_root, "--epochs", 2, "--out", run)
    message = (f"interrupted: training interrupted (Ctrl-C): stopped during epoch 2/2; {run}/last.pt holds epoch 1; "
               f"continue with: kanseg train --resume {run}")
    assert proc.returncode == 130 and proc.stderr == message + "\n", proc.stderr
    assert (run / "log.txt").read_text().splitlines()[-1] == message
    assert temps(run) == [] and load_checkpoint(run / "last.pt")["epoch"] == 1


def test_ctrl_c_before_the_first_checkpoint(capsys, tmp_path, demo_root, monkeypatch):
    import kanseg.engine.trainer as trainer

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt  # what Python raises on SIGINT

    monkeypatch.setattr(trainer, "_train_epoch", interrupt)
    run = tmp_path / "run"
    code, _, err = kanseg(capsys, "train", *TINY, "--data-root", demo_root, "--epochs", 2, "--out", run)
    assert code == 130 and err == (f"interrupted: training interrupted (Ctrl-C): stopped during epoch 1/2, before the "
                                   f"first checkpoint; start it again with: kanseg train --resume {run}\n")
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "log.txt"]


def test_ctrl_c_during_benchmark_names_finished_runs(capsys, tmp_path, demo_root):
    out_dir = tmp_path / "bench"
    args = ["benchmark", *TINY[:-2], "--set", "model.kwargs={base_width: 4, depth: 2}", "--data-root", demo_root,
            "--epochs", 1, "--models", "unet-gram", "--seeds", 2, "--out", out_dir]
    proc = signalled("SIGINT", "epoch", 2, *args)  # epoch 1 of the second run
    assert proc.returncode == 130, proc.stderr
    assert proc.stderr == (f"interrupted: benchmark interrupted (Ctrl-C) during unet-gram/seed1: finished "
                           f"unet-gram/seed0; not finished unet-gram/seed1 (runs in {out_dir}); run the same command "
                           "again to continue (finished runs are reused, an interrupted one resumes from its "
                           "last.pt)\n")
    assert (out_dir / "unet-gram" / "seed0" / "summary.json").is_file() and not (out_dir / "benchmark.json").exists()
    code, out, err = kanseg(capsys, *args)
    assert code == 0, err
    assert out.count("reusing") == 1 and (out_dir / "benchmark.json").is_file()


def test_garbage_and_mismatched_checkpoints_are_kanseg_lines(tmp_path):
    from kanseg.errors import KansegError
    from kanseg.inference import Predictor
    from kanseg.models import create_model

    garbage = tmp_path / "garbage.pt"
    for seed in range(20):  # random bytes fail in many different places of the unpickler
        garbage.write_bytes(np.random.default_rng(seed).bytes(300))
        with pytest.raises(KansegError) as info:
            Predictor.from_checkpoint(garbage)
        assert str(info.value) == f"cannot read checkpoint {garbage}: corrupt, truncated or not a PyTorch file"
    code = tmp_path / "code.pt"
    torch.save({"format": "kanseg-checkpoint-v1", "payload": os.system}, code)
    with pytest.raises(KansegError, match="kanseg never runs code from a checkpoint") as info:
        Predictor.from_checkpoint(code)
    assert "weights_only" not in str(info.value)
    kwargs = {"spatial_dims": 2, "in_channels": 3, "out_channels": 1, "depth": 2, "base_width": 4}
    state = create_model("unet-conv", **{**kwargs, "base_width": 8}).state_dict()
    wrong = save_checkpoint(tmp_path / "wrong.pt", model_name="unet-conv", model_kwargs=kwargs, state_dict=state)
    with pytest.raises(KansegError) as info:
        Predictor.from_checkpoint(wrong)
    message = str(info.value)
    assert message.startswith(f"checkpoint {wrong} does not fit model 'unet-conv': shape (")
    assert " in the checkpoint, " in message and "\n" not in message and "weights_only" not in message


def test_ctrl_c_in_the_final_evaluation_then_resume_finishes(capsys, tmp_path, demo_root, monkeypatch):
    import kanseg.engine.trainer as trainer

    evaluate = trainer.evaluate_dataset

    def interrupted_final(*args, with_hd95, **kwargs):
        if with_hd95:  # the final evaluation of best.pt
            raise KeyboardInterrupt
        return evaluate(*args, with_hd95=with_hd95, **kwargs)

    monkeypatch.setattr(trainer, "evaluate_dataset", interrupted_final)
    run = tmp_path / "run"
    code, _, err = kanseg(capsys, "train", *TINY, "--data-root", demo_root, "--epochs", 1, "--out", run)
    assert code == 130 and err == (f"interrupted: training interrupted (Ctrl-C): stopped after all 1 epochs, during "
                                   f"the final evaluation; finish it with: kanseg train --resume {run}\n")
    assert not (run / "summary.json").exists()
    monkeypatch.setattr(trainer, "evaluate_dataset", evaluate)
    code, out, err = kanseg(capsys, "train", "--resume", run)
    assert code == 0, err
    assert "epoch 1/1" not in out and "per-image" in out and epochs_logged(run) == [1]
    assert "run" in json.loads((run / "summary.json").read_text())


def test_corrupt_image_in_the_first_epoch_then_same_command_after_the_fix(capsys, tmp_path, demo_root):
    data = shutil.copytree(demo_root, tmp_path / "data")
    meta = json.loads((data / "dataset.json").read_text())
    victim = data / "imagesTr" / f"{meta['kanseg_splits']['default']['train'][-1]}.png"
    good = victim.read_bytes()
    victim.write_bytes(good[:60])
    run = tmp_path / "run"
    command = ["train", *TINY, "--data-root", data, "--epochs", 1, "--out", run]
    code, _, err = kanseg(capsys, *command)
    assert code == 2 and err == f"error: cannot read image {victim}: corrupt, truncated or not an image\n"
    assert sorted(p.name for p in run.iterdir()) == ["config.yaml", "log.txt"]
    victim.write_bytes(good)
    code, out, err = kanseg(capsys, *command)
    assert code == 0 and "starting again" in out and (run / "summary.json").is_file(), err
