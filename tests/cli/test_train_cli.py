"""``kanseg train | evaluate | benchmark | demo`` as a user runs them: exit codes, output, files."""

import json
import re
import subprocess
import sys
from pathlib import Path

import cv2
import pytest

from kanseg.cli import main

TINY_YAML = """\
data:
  dataset: demo
  image_size: 32
model:
  name: unet-gram
  kwargs: {base_width: 4, depth: 2}
optim:
  lr: 0.01
  min_lr: 0.001
epochs: 5
batch_size: 4
device: cpu
"""


def kanseg(capsys, *args) -> tuple[int, str, str]:
    """Run the CLI in-process: (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    out = capsys.readouterr()
    return exit_info.value.code or 0, out.out, out.err


@pytest.fixture(scope="module")
def tiny_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "tiny.yaml"
    path.write_text(TINY_YAML)
    return path


def test_train_evaluate_resume(capsys, tmp_path, demo_root, tiny_yaml):
    run = tmp_path / "run"
    code, out, err = kanseg(capsys, "train", "--config", tiny_yaml, "--data-root", demo_root, "--epochs", 2,
                            "--out", run)
    assert code == 0, err
    assert "epoch 1/2 loss" in out and "epoch 2/2 loss" in out and "per-image" in out
    resolved = (run / "config.yaml").read_text()
    assert "epochs: 2" in resolved and "lr: 0.01" in resolved  # flag over YAML, YAML over defaults

    code, out, err = kanseg(capsys, "evaluate", "--run", run, "--split", "test")
    assert code == 0, err
    for label in ("per-image", "global", "ukan-compat"):
        assert label in out
    summary = json.loads((run / "summary.json").read_text())
    assert {"run", "val", "test"} <= set(summary) and len(summary["test"]["cases"]) == 8

    code, out, err = kanseg(capsys, "train", "--resume", run, "--epochs", 3)
    assert code == 0, err
    assert "resuming" in out and "epoch 3/3" in out and "epoch 1/3" not in out
    assert [json.loads(x)["epoch"] for x in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2, 3]


BAD_INPUTS = [
    (["train", "--model", "unet-nope"], "unknown model 'unet-nope'; valid: "),
    (["train", "--dataset", "nope"], "unknown dataset 'nope'; valid: busi"),
    (["train", "--set", "optim.momentum=0.9"], "invalid config key 'optim.momentum'; valid keys: "),
    (["train", "--set", "epochs"], "--set expects KEY=VALUE"),
    (["train", "--epochs", "0"], "invalid value for 'epochs'"),
    (["train", "--amp", "fp16"], "--amp fp16 needs a CUDA device"),
    (["train", "--split", "nope"], "unknown split 'nope'"),
]


@pytest.mark.parametrize("args,message", BAD_INPUTS, ids=[m.split()[0] + str(i) for i, (_, m) in enumerate(BAD_INPUTS)])
def test_bad_train_input_is_one_line_and_writes_nothing(capsys, tmp_path, demo_root, tiny_yaml, args, message):
    out_dir = tmp_path / "run"
    code, _, err = kanseg(capsys, "train", "--config", tiny_yaml, "--data-root", demo_root, "--out", out_dir,
                          *args[1:])
    assert code == 2
    assert err.startswith("error: ") and message in err and err.count("\n") == 1
    assert not out_dir.exists()


def test_other_bad_inputs(capsys, tmp_path, tiny_yaml):
    bad_yaml = tmp_path / "bad.yaml"
    bad_yaml.write_text("data:\n  datset: busi\n")
    cases = [
        (["train", "--config", bad_yaml], "invalid config key 'data.datset'"),
        (["train", "--dataset", "cvc", "--data-root", tmp_path / "no-such-folder", "--out", tmp_path / "r"],
         "CVC-ClinicDB not found"),
        (["train", "--resume", tmp_path], "not a kanseg run directory"),
        (["train", "--resume", tmp_path, "--model", "unet-conv"], "--model cannot change it"),
        (["evaluate", "--run", tmp_path], "not a kanseg run directory"),
        (["benchmark", "--dataset", "demo", "--models", "unet-gram,unet-nope", "--out", tmp_path / "b"],
         "unknown model 'unet-nope'"),
        (["benchmark", "--dataset", "demo", "--seeds", "0", "--out", tmp_path / "b"], "--seeds must be at least 1"),
    ]
    for args, message in cases:
        code, _, err = kanseg(capsys, *args)
        assert (code, err.count("\n")) == (2, 1) and message in err, (args, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.yaml"]


def test_real_process_prints_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "kanseg", "train", "--dataset", "busi", "--data-root",
                           str(tmp_path / "missing"), "--out", str(tmp_path / "run")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.startswith("error: ") and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert not (tmp_path / "run").exists()


def test_benchmark_trains_then_reuses(capsys, tmp_path, demo_root, tiny_yaml):
    args = ["benchmark", "--dataset", "demo", "--config", tiny_yaml, "--data-root", demo_root, "--epochs", 1,
            "--models", "unet-gram,unet-conv", "--seeds", 2, "--out", tmp_path / "bench"]
    code, out, err = kanseg(capsys, *args)
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    assert [r["model"] for r in result["rows"]] == ["unet-gram", "unet-conv"]
    for row in result["rows"]:
        assert row["seeds"] == [0, 1] and len(row["dice"]["values"]) == 2
        assert row["params"] > 0 and row["flops"] > 0 and row["images_per_s"] > 0
        assert row["dice"]["mean"] == pytest.approx(sum(row["dice"]["values"]) / 2)
        for seed in (0, 1):
            summary = json.loads((tmp_path / "bench" / row["model"] / f"seed{seed}" / "summary.json").read_text())
            assert summary["test"]["report"]["per_image"]["dice"]["mean"] == pytest.approx(row["dice"]["values"][seed])
    assert "| unet-gram |" in out and "± " in out and "per-image" in out
    code, out, err = kanseg(capsys, *args)
    assert code == 0 and out.count("reusing") == 4 and "epoch 1/1" not in out
    assert json.loads((tmp_path / "bench" / "benchmark.json").read_text())["rows"][0]["dice"] == result["rows"][0]["dice"]


def test_benchmark_model_options_match_params_and_costs(capsys, tmp_path, demo_root, tiny_yaml):
    from kanseg.models import create_model

    args = ["benchmark", "--dataset", "demo", "--config", tiny_yaml, "--data-root", demo_root, "--epochs", 1,
            "--models", "unet-conv@base_width=8,unet-gram,unet-gram@base_width=2", "--seeds", 1, "--match-params",
            "--out", tmp_path / "bench"]
    code, out, err = kanseg(capsys, *args)
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    labels = [r["model"] for r in result["rows"]]
    ref, matched, explicit = result["rows"]
    assert ref["model_kwargs"] == {"base_width": 8} and explicit["model_kwargs"] == {"base_width": 2}
    width = matched["model_kwargs"]["base_width"]
    assert labels == ["unet-conv@base_width=8", f"unet-gram@base_width={width}", "unet-gram@base_width=2"]
    counts = {}
    for w in (width - 1, width, width + 1):  # the matched width is the closest to the reference's count
        model = create_model("unet-gram", spatial_dims=2, in_channels=3, out_channels=1, base_width=w,
                             **{k: v for k, v in matched_kwargs(tmp_path / "bench" / labels[1]).items()
                                if k != "base_width"})
        counts[w] = sum(p.numel() for p in model.parameters())
    assert counts[width] == matched["params"]
    assert abs(counts[width] - ref["params"]) <= min(abs(counts[width - 1] - ref["params"]),
                                                     abs(counts[width + 1] - ref["params"]))
    for row in result["rows"]:  # costs from each run's summary, mean ± std over seeds
        summary = json.loads((tmp_path / "bench" / row["model"] / "seed0" / "summary.json").read_text())["run"]
        assert summary["train_time_s"] > 0 and summary["s_per_epoch"] == pytest.approx(summary["train_time_s"], abs=0.011)
        assert summary["peak_rss_mb"] > 50 and summary["rss_scope"] in ("run", "process")
        assert row["train_time_s"]["values"] == [summary["train_time_s"]]
        assert row["peak_rss_mb"]["mean"] == summary["peak_rss_mb"]
    assert "| train time (min) | s/epoch | peak RSS (GB) |" in out and "match-params: unet-gram base_width=" in out


def matched_kwargs(run_dir: Path) -> dict:
    from kanseg.checkpoint import load_checkpoint

    kwargs = dict(load_checkpoint(run_dir / "seed0" / "best.pt")["model"]["kwargs"])
    for key in ("spatial_dims", "in_channels", "out_channels"):
        kwargs.pop(key)
    return kwargs


def test_benchmark_per_model_settings_and_match_time(capsys, tmp_path, demo_root, tiny_yaml):
    """Per-model config keys reach each run's config; --match-time gives the slower model fewer epochs, from
    step times measured in the same process."""
    import yaml

    args = ["benchmark", "--dataset", "demo", "--config", tiny_yaml, "--data-root", demo_root, "--epochs", 4,
            "--models", "unet-conv@base_width=4,unet-gram@base_width=8@block_options.dropout=0.1@optim.kan_lr=3e-3"
            ",unet-conv@base_width=2@epochs=1", "--seeds", 1, "--match-time", "--out", tmp_path / "bench"]
    code, out, err = kanseg(capsys, *args)
    assert code == 0, err
    result = json.loads((tmp_path / "bench" / "benchmark.json").read_text())
    ref, kan, explicit = result["rows"]
    assert result["match_time"] is True and ref["epochs"] == 4 and explicit["epochs"] == 1
    assert 1 <= kan["epochs"] <= 4 and kan["settings"] == {"optim.kan_lr": 0.003, "epochs": kan["epochs"]}
    summary = json.loads((tmp_path / "bench" / ref["model"] / "seed0" / "summary.json").read_text())
    n_train = int(re.search(r"(\d+) train / \d+ val cases", out).group(1))
    assert summary["run"]["train_batches"] == n_train // 4  # batch 4, the last partial batch dropped
    assert kan["model"] == f"unet-gram@base_width=8@block_options.dropout=0.1@epochs={kan['epochs']}@optim.kan_lr=0.003"
    cfg = yaml.safe_load((tmp_path / "bench" / kan["model"] / "seed0" / "config.yaml").read_text())
    assert cfg["optim"]["kan_lr"] == 0.003 and cfg["epochs"] == kan["epochs"]
    assert cfg["model"]["kwargs"] == {"base_width": 8, "depth": 2, "block_options": {"dropout": 0.1}}
    unmatched = kan["model"].replace(f"@epochs={kan['epochs']}", "")
    assert f"match-time: {unmatched} epochs={kan['epochs']}" in out


def test_training_step_seconds_and_match_epochs():
    from torch import nn

    from kanseg.engine.benchmark import match_epochs, training_step_seconds

    small = nn.Conv2d(3, 1, 1)
    big = nn.Sequential(*[nn.Conv2d(3, 3, 3, padding=1) for _ in range(8)], nn.Conv2d(3, 1, 1))
    assert training_step_seconds(big, (3, 64, 64)) > training_step_seconds(small, (3, 64, 64))
    assert match_epochs(1.0, 2.0, 10) == 5 and match_epochs(1.0, 0.5, 10) == 20 and match_epochs(1.0, 100.0, 3) == 1
    # with the reference's epoch time and batches, data loading counts the same for both: 12 epochs of a
    # 150 ms-step model (53 steps + 3.55 s per epoch) = 22 epochs of a 50 ms-step model, not the ratio's 36
    assert match_epochs(0.15, 0.05, 12, reference_epoch_s=11.5, batches=53) == 22
    assert match_epochs(0.15, 0.05, 12, reference_epoch_s=1.0, batches=53) == 36  # overhead never below 0


@pytest.mark.parametrize("spec, message", [
    ("unet-gram@base_width", "write MODEL@KEY=VALUE"),
    ("unet-gram@=4", "write MODEL@KEY=VALUE"),
    ("unet-nope@base_width=4", "unknown model 'unet-nope'"),
    ("unet-gram@seed=3", "cannot be set per model"),
    ("unet-gram@model.kwargs.depth=3", "cannot be set per model"),
    ("unet-gram@optim.lr=fast", "invalid value for 'optim.lr'"),
])
def test_benchmark_bad_model_spec(capsys, tmp_path, spec, message):
    code, out, err = kanseg(capsys, "benchmark", "--dataset", "demo", "--models", spec, "--out", tmp_path / "b")
    assert code != 0 and message in err and "Traceback" not in err
    assert not (tmp_path / "b").exists()


def test_demo_runs_out_of_the_box(capsys, tmp_path):
    code, out, err = kanseg(capsys, "demo", "--out", tmp_path / "demo", "--epochs", 1, "--device", "cpu")
    assert code == 0, err
    listed = {line[2:27].strip(): line[27:].strip() for line in out.splitlines() if line.startswith("  ")}
    assert Path(listed["best checkpoint"]).is_file() and Path(listed["evaluation (val + test)"]).is_file()
    image, mask = cv2.imread(listed["input image"]), cv2.imread(listed["predicted mask"], cv2.IMREAD_UNCHANGED)
    assert mask.shape == image.shape[:2] and set(mask.ravel().tolist()) <= {0, 255}
    assert Path(listed["predicted overlay"]).is_file()
    summary = json.loads(Path(listed["evaluation (val + test)"]).read_text())
    assert {"val", "test"} <= set(summary)
    # the median-Dice test case, enlarged, its Dice printed and in the file name
    dices = sorted(row["dice"] for row in summary["test"]["cases"])
    median = dices[len(dices) // 2]
    picture = cv2.imread(listed["median case picture"])
    assert picture.shape[0] >= 256 and picture.shape[1] >= 2 * 256
    assert listed["median case picture"].endswith(f"_median_dice{median:.2f}.png")
    assert f"Dice {median:.3f}" in out and "median test case" in out


def test_train_fold_is_the_fold_split(capsys, tmp_path, demo_root, tiny_yaml):
    """--fold k trains on cross-validation fold k of the default split (dataset.json datasets: fold<k>)."""
    code, _, err = kanseg(capsys, "train", "--config", tiny_yaml, "--data-root", demo_root, "--epochs", 1,
                          "--fold", 1, "--out", tmp_path / "run")
    assert code == 0, err
    assert "split: fold1" in (tmp_path / "run" / "config.yaml").read_text()
    code, _, err = kanseg(capsys, "train", "--resume", tmp_path / "run", "--fold", 0)
    assert code == 2 and "--fold cannot change it" in err
