"""Training runs on the generated demo data: learning, exact resume, seeded determinism, files."""

import csv
import json
import math

import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.config import load_config
from kanseg.engine import evaluate_run, setup, train
from kanseg.engine.distributed import DistributedContext
from kanseg.engine.evaluate import evaluate_dataset
from kanseg.errors import KansegError
from kanseg.metrics import summarize

EPOCHS = 3


def _metrics(run_dir):
    """metrics.jsonl without the wall-clock field."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k != "time_s"} for r in rows]


def _csv(run_dir):
    """metrics.csv rows (dicts of strings) without the wall-clock column."""
    with open(run_dir / "metrics.csv", newline="") as handle:
        return [{k: v for k, v in row.items() if k != "time_s"} for row in csv.DictReader(handle)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory, tiny_config):
    """Four runs of the same tiny config: A and C uninterrupted, B stopped after 1 epoch and resumed,
    D with another seed."""
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, seed in [("A", 0), ("C", 0), ("D", 1)]:
        out[name] = train(tiny_config(root / name, epochs=EPOCHS, seed=seed))
    partial = train(tiny_config(root / "B", epochs=EPOCHS), stop_after=1)
    assert partial.summary == {} and not (root / "B" / "summary.json").exists()
    assert len(_metrics(root / "B")) == 1
    for name in ("metrics.jsonl", "metrics.csv"):  # as if killed after logging epoch 2, before its last.pt
        lines = (root / "B" / name).read_text().splitlines()
        (root / "B" / name).write_text("\n".join([*lines, lines[-1].replace("1", "2", 1)]) + "\n")
    out["B"] = train(load_config(root / "B" / "config.yaml"), resume=root / "B")
    return out


def test_run_directory_files(runs):
    run_dir = runs["A"].run_dir
    assert sorted(p.name for p in run_dir.iterdir()) == [
        "best.pt", "config.yaml", "last.pt", "log.txt", "metrics.csv", "metrics.jsonl", "summary.json"]
    metrics = _metrics(run_dir)
    assert [m["epoch"] for m in metrics] == list(range(1, EPOCHS + 1))
    best = max(metrics, key=lambda m: m["val"]["dice"])
    assert load_checkpoint(run_dir / "best.pt")["epoch"] == best["epoch"] == runs["A"].best_epoch
    last = load_checkpoint(run_dir / "last.pt")  # weights_only load: everything is plain data
    assert last["epoch"] == EPOCHS and {"optimizer", "scheduler", "scaler", "rng"} <= set(last)
    assert last["model"]["kwargs"] == {"spatial_dims": 2, "in_channels": 3, "out_channels": 1,
                                       "base_width": 4, "depth": 2}
    assert last["preprocessing"]["image_size"] == [32, 32]
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["run"]["best_epoch"] == best["epoch"] and summary["run"]["world_size"] == 1
    val = summary["val"]
    assert len(val["cases"]) == 8 and all(c["hd95"] is not None for c in val["cases"])
    assert val["report"]["per_image"]["dice"]["mean"] == pytest.approx(best["val"]["dice"])
    assert "mean over cases at native resolution" in val["report"]["aggregations"]["per_image"]
    resolved = load_config(run_dir / "config.yaml")
    assert (resolved.epochs, resolved.model.kwargs, resolved.out) == (EPOCHS, {"base_width": 4, "depth": 2},
                                                                      str(run_dir))


def test_training_measurably_learns(runs, tiny_config, tmp_path):
    """Untrained val Dice (same init) is ~0.3; after 3 epochs it must exceed 0.7."""
    cfg = tiny_config(tmp_path / "unused", epochs=EPOCHS)
    data = setup.build_datasets(cfg)
    torch.manual_seed(cfg.seed)
    untrained = setup.make_model(cfg, setup.model_kwargs(cfg, data["train"]))
    _, before = evaluate_dataset(untrained, data["val"], DistributedContext(), with_hd95=False, batch_size=4)
    after = runs["A"].summary["val"]["report"]["per_image"]["dice"]["mean"]
    assert before["per_image"]["dice"]["mean"] < 0.5
    assert after > 0.7
    losses = [m["train_loss"] for m in _metrics(runs["A"].run_dir)]
    assert losses[-1] < losses[0]


def test_resume_equals_uninterrupted(runs):
    a, b = (load_checkpoint(runs[k].run_dir / "last.pt") for k in "AB")
    assert a["state_dict"].keys() == b["state_dict"].keys()
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    assert _metrics(runs["A"].run_dir) == _metrics(runs["B"].run_dir)
    assert _csv(runs["A"].run_dir) == _csv(runs["B"].run_dir)  # the stale epoch-2 row is gone
    assert runs["B"].summary["val"]["report"] == runs["A"].summary["val"]["report"]


def test_metrics_csv_is_metrics_jsonl_as_a_table(runs):
    run_dir = runs["A"].run_dir
    rows = _csv(run_dir)
    header = (run_dir / "metrics.csv").read_text().splitlines()[0].split(",")
    assert header == ["epoch", "train_loss", "lr_other", "val_dice", "val_iou", "val_global_dice", "val_global_iou",
                      "val_ukan_dice", "val_ukan_iou", "time_s"]
    for row, record in zip(rows, _metrics(run_dir), strict=True):
        assert int(row["epoch"]) == record["epoch"] and float(row["train_loss"]) == record["train_loss"]
        assert float(row["lr_other"]) == record["lr"]["other"]
        assert {k[4:]: float(v) for k, v in row.items() if k.startswith("val_")} == record["val"]


def test_same_seed_same_metrics_other_seed_differs(runs):
    assert _metrics(runs["A"].run_dir) == _metrics(runs["C"].run_dir)
    assert _metrics(runs["A"].run_dir) != _metrics(runs["D"].run_dir)


def test_evaluate_run_records_each_subset_and_matches_training_metrics(runs):
    run_dir = runs["C"].run_dir
    last_epoch_val = _metrics(run_dir)[-1]["val"]
    entry = evaluate_run(run_dir, subset="val", checkpoint="last", device="cpu")
    report = entry["report"]
    assert entry["checkpoint"] == "last.pt" and entry["epoch"] == EPOCHS
    assert report["per_image"]["dice"]["mean"] == pytest.approx(last_epoch_val["dice"])
    assert report["global"]["iou"] == pytest.approx(last_epoch_val["global_iou"])
    assert report["ukan_compat"]["iou"] == pytest.approx(last_epoch_val["ukan_iou"])
    test = evaluate_run(run_dir, subset="test", device="cpu")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert {"run", "val", "test"} <= set(summary)
    assert summary["test"]["report"] == json.loads(json.dumps(test["report"]))
    assert summarize(test["cases"])["per_image"] == test["report"]["per_image"]
    assert [c["index"] for c in test["cases"]] == list(range(8))


def test_new_run_never_overwrites(runs, tiny_config):
    run_dir = runs["D"].run_dir
    before = {p.name: p.read_bytes() for p in run_dir.iterdir()}
    with pytest.raises(KansegError, match="already holds a run.*--resume"):
        train(tiny_config(run_dir, epochs=1))
    assert {p.name: p.read_bytes() for p in run_dir.iterdir()} == before
    with pytest.raises(KansegError, match="already finished 3 epochs"):
        train(load_config(run_dir / "config.yaml"), resume=run_dir)


@pytest.mark.parametrize("overrides,message", [
    ({"amp": "fp16"}, "fp16 needs a CUDA device"),
    ({"model.name": "unet-nope"}, "unknown model 'unet-nope'; valid: .*unet-gram"),
    ({"model.kwargs": {"depth": 2, "colour": 1}}, "unknown option"),
    ({"data.dataset": "nope"}, "unknown dataset 'nope'; valid: busi"),
])
def test_bad_input_writes_nothing(tiny_config, tmp_path, overrides, message):
    out = tmp_path / "run"
    with pytest.raises(KansegError, match=message):
        train(tiny_config(out, epochs=1, **overrides))
    assert not out.exists()


def test_best_checkpoint_predicts_like_training(runs):
    """best.pt rebuilt from its own description scores exactly what summary.json says."""
    ckpt = load_checkpoint(runs["A"].run_dir / "best.pt")
    model = build_model(ckpt)
    cfg = load_config(runs["A"].run_dir / "config.yaml")
    val = setup.build_datasets(cfg, ("val",))["val"]
    assert val.preprocessing == ckpt["preprocessing"]
    rows, report = evaluate_dataset(model, val, DistributedContext(), **setup.eval_options(cfg, val))
    assert report["per_image"]["dice"] == runs["A"].summary["val"]["report"]["per_image"]["dice"]


@pytest.mark.parametrize("overrides", [
    {"amp": "bf16"},
    {"model.name": "unetpp-gram-ds", "optim.kan_lr": 1e-3, "optim.grad_clip": 1.0},  # deep-supervision list
    {"loss.name": "dice", "optim.name": "adamw", "optim.scheduler": "none", "optim.kan_scope": "basis",
     "optim.kan_lr": 1e-3},
    {"model.name": "unetpp-gram-ds", "model.kwargs": {"base_width": 4, "depth": 3}, "loss.name": "dice-focal",
     "loss.deep_supervision": "decay", "loss.ds_skip_lowest": True},  # two outputs, the lowest weighted 0
    {"loss.name": "tversky", "loss.tversky_alpha": 0.3, "loss.tversky_beta": 0.7, "optim.scheduler": "poly",
     "optim.warmup_epochs": 1, "optim.accumulate": 5},
], ids=["bf16", "deep-supervision", "dice-adamw", "deep-supervision-decay", "tversky-poly-accumulate"])
def test_training_variants_run_and_score(tiny_config, tmp_path, overrides):
    result = train(tiny_config(tmp_path / "run", epochs=1, **overrides))
    (record,) = result.history
    assert math.isfinite(record["train_loss"]) and 0 <= record["val"]["dice"] <= 1
    groups = load_checkpoint(tmp_path / "run" / "last.pt")["optimizer"]["param_groups"]
    assert [g["name"] for g in groups] == (["kan", "other"] if "optim.kan_lr" in overrides else ["other"])


def test_3d_nifti_patches_then_whole_volume_sliding_window(tmp_path):
    """3D: random 16^3 patches for training, native whole volumes (sliding window) for validation."""
    from kanseg.config import load_config
    from kanseg.data import build_dataset, generate_synthetic

    root = generate_synthetic("nifti3d", tmp_path / "data", n_cases=8)
    cfg = load_config(None, {"data.dataset": str(root), "data.patch_size": [16, 16, 16], "model.name": "unet-gram",
                             "model.kwargs": {"base_width": 4, "depth": 2}, "epochs": 1, "batch_size": 2,
                             "device": "cpu", "out": str(tmp_path / "run")})
    result = train(cfg)
    ckpt = load_checkpoint(tmp_path / "run" / "best.pt")
    assert ckpt["preprocessing"]["spatial_dims"] == 3 and ckpt["preprocessing"]["image_size"] is None
    from kanseg.inference.predictor import training_patch_size
    assert training_patch_size(ckpt) == [16, 16, 16]      # predict's default window = the training patch
    val = build_dataset(str(root), subset="val")
    cases = result.summary["val"]["cases"]
    assert len(cases) == len(val)
    for row, index in zip(cases, range(len(val))):
        native = val.native_label(index)
        assert row["tp"] + row["fn"] == int(native.sum())  # scored at native resolution
        assert row["model_union"] >= row["model_intersection"] >= 0
        assert row["hd95"] is not None and row["hd95"] >= 0
    from kanseg.engine import evaluate_run
    from kanseg.engine.runlog import RunLog

    test = evaluate_run(tmp_path / "run", subset="test", log=RunLog(None))  # the test data matches the checkpoint
    assert len(test["cases"]) == len(build_dataset(str(root), subset="test"))


# every training feature on: warm-up + poly, accumulation with a partial last group (6 batches, groups of 4),
# EMA weights, early stopping (min_delta 1 cannot be beaten: it stops after epoch 3 of 4), TensorBoard, a weighted
# loss, two parameter groups
ALL_FEATURES = {"optim.warmup_epochs": 1, "optim.scheduler": "poly", "optim.accumulate": 4, "optim.ema_decay": 0.9,
                "optim.kan_lr": 1e-2, "early_stop.patience": 2, "early_stop.min_delta": 1.0, "tensorboard": True,
                "loss.pos_weight": 2.0}


def test_resume_equals_uninterrupted_with_every_feature(tiny_config, tmp_path):
    pytest.importorskip("tensorboard")
    from tests.engine.test_training_features import read_scalars, tensorboard_expected

    whole = train(tiny_config(tmp_path / "whole", epochs=4, **ALL_FEATURES))
    resumed_dir = tmp_path / "resumed"
    train(tiny_config(resumed_dir, epochs=4, **ALL_FEATURES), stop_after=1)
    saved = (resumed_dir / "last.pt").read_bytes()
    train(load_config(resumed_dir / "config.yaml"), resume=resumed_dir, stop_after=1)
    (resumed_dir / "last.pt").write_bytes(saved)  # as if killed after logging epoch 2, before its last.pt
    resumed = train(load_config(resumed_dir / "config.yaml"), resume=resumed_dir)

    assert [r["epoch"] for r in whole.history] == [1, 2, 3] and whole.summary["run"]["stopped_early"]["epoch"] == 3
    a, b = (load_checkpoint(d / "last.pt") for d in (tmp_path / "whole", resumed_dir))
    for key in a["state_dict"]:
        assert torch.equal(a["state_dict"][key], b["state_dict"][key]), key
    for key, value in a["callbacks"]["EMAWeights"]["weights"].items():
        assert torch.equal(value, b["callbacks"]["EMAWeights"]["weights"][key]), key
    assert a["callbacks"]["EarlyStopping"] == b["callbacks"]["EarlyStopping"]
    assert whole.summary["run"]["weights_sha1_per_rank"] == resumed.summary["run"]["weights_sha1_per_rank"]
    assert _metrics(tmp_path / "whole") == _metrics(resumed_dir)
    assert [m["lr"]["kan"] for m in _metrics(resumed_dir)] == pytest.approx([5e-3, 1e-2, 1e-2 * (2 / 3) ** 0.9])
    assert whole.summary["val"]["report"] == resumed.summary["val"]["report"]
    assert resumed.summary["run"]["stopped_early"] == whole.summary["run"]["stopped_early"]
    assert read_scalars(resumed_dir) == read_scalars(tmp_path / "whole") == tensorboard_expected(resumed_dir)
