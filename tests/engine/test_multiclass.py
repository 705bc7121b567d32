"""Multi-class 2D end to end on generated shapes: model outputs, training learns every class,
checkpoint, summary.json / evaluate report / benchmark table per class, predict label maps."""

import json

import cv2
import numpy as np
import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint
from kanseg.config import load_config
from kanseg.data import generate_synthetic
from kanseg.engine.benchmark import format_table, run_benchmark
from kanseg.engine.evaluate import evaluate_run
from kanseg.engine.runlog import RunLog
from kanseg.engine.trainer import train
from kanseg.inference import Predictor, predict
from kanseg.inference.overlays import class_colour
from kanseg.metrics import format_report

LABEL_VALUES = (0, 100, 200)  # stored values differ from the class indices on purpose
CLASSES = ["background", "anterior", "posterior"]
MIN_DICE = 0.7  # every foreground class, per-image mean on the validation cases


@pytest.fixture(scope="module")
def multiclass_run(tmp_path_factory):
    """A tiny unet-conv trained on 24 generated 2D cases with two foreground classes (~20 s on 2 CPUs).

    The run lives where ``kanseg benchmark`` looks for model unet-conv, seed 0, so the benchmark reuses it."""
    tmp = tmp_path_factory.mktemp("multiclass")
    root = generate_synthetic("multiclass2d", tmp / "data", n_cases=24, seed=0, label_values=LABEL_VALUES)
    cfg = load_config(None, {
        "data.dataset": str(root / "dataset.json"), "data.image_size": 32, "data.augment": False,
        "model.name": "unet-conv", "model.kwargs": {"base_width": 8, "depth": 2}, "batch_size": 4,
        "optim.lr": 1e-2, "optim.min_lr": 1e-3, "epochs": 10, "device": "cpu", "monitor": "dice",
        "out": str(tmp / "bench" / "unet-conv" / "seed0"),
    })
    torch.manual_seed(0)
    result = train(cfg)
    return cfg, result, root


def test_training_learns_every_class(multiclass_run):
    _, result, _ = multiclass_run
    report = result.summary["val"]["report"]
    assert report["classes"] == CLASSES[1:]
    per_class = {name: block["per_image"]["dice"]["mean"] for name, block in report["per_class"].items()}
    assert min(per_class.values()) > MIN_DICE, per_class
    # monitor "dice" is the mean foreground Dice
    assert result.best_value == pytest.approx(np.mean(list(per_class.values())))
    assert "ukan_compat" not in report  # a binary-only protocol
    rows = result.summary["val"]["cases"]
    assert all(set(row["per_class"]) == set(CLASSES[1:]) for row in rows)


def test_checkpoint_stores_classes_and_rebuilds(multiclass_run):
    cfg, result, _ = multiclass_run
    ckpt = load_checkpoint(result.run_dir / "best.pt")
    assert ckpt["model"]["kwargs"]["out_channels"] == 3
    assert ckpt["preprocessing"]["classes"] == CLASSES
    assert ckpt["preprocessing"]["label_values"] == list(LABEL_VALUES)
    model = build_model(ckpt)
    assert model(torch.zeros(1, 1, 32, 32)).shape[1] == 3
    predictor = Predictor.from_checkpoint(result.run_dir / "best.pt", device="cpu")
    assert predictor.preprocessing["classes"] == CLASSES


def test_evaluate_writes_per_class_rows_and_report(multiclass_run):
    _, result, _ = multiclass_run
    entry = evaluate_run(result.run_dir, subset="test", device="cpu", log=RunLog(None, enabled=False))
    summary = json.loads((result.run_dir / "summary.json").read_text())
    assert summary["test"]["report"]["classes"] == CLASSES[1:]
    assert set(summary["test"]["cases"][0]["per_class"]) == set(CLASSES[1:])
    text = format_report(entry["report"])
    assert "\nanterior " in text and "\nposterior " in text and "ukan-compat" not in text


def test_benchmark_table_has_a_row_per_class(multiclass_run, tmp_path):
    cfg, result, _ = multiclass_run
    out = result.run_dir.parent.parent
    bench = run_benchmark(cfg, ["unet-conv"], [0], out, subset="test", log=RunLog(None, enabled=False))
    row = bench["rows"][0]
    assert set(row["per_class"]) == set(CLASSES[1:])
    assert row["per_class"]["anterior"]["dice"]["values"][0] == pytest.approx(
        json.loads((result.run_dir / "summary.json").read_text())["test"]["report"]["per_class"]["anterior"]
        ["per_image"]["dice"]["mean"])
    table = format_table(bench)
    assert "| unet-conv | anterior |" in table and "| unet-conv | posterior |" in table
    assert (out / "benchmark.md").read_text().strip() == table


def test_predict_writes_label_values_probabilities_and_overlay(multiclass_run, tmp_path):
    _, result, root = multiclass_run
    image = sorted((root / "imagesTr").glob("*.png"))[0]
    truth = cv2.imread(str(root / "labelsTr" / image.name.replace("_0000", "")), cv2.IMREAD_UNCHANGED)
    report = predict(result.run_dir / "best.pt", [image], tmp_path, save_probabilities=True, overlay=True,
                     device="cpu")
    assert report.ok, report.failures
    outputs = report.outcomes[0].outputs
    mask = cv2.imread(str(outputs["mask"]), cv2.IMREAD_UNCHANGED)
    assert mask.dtype == np.uint8 and mask.shape == truth.shape
    assert set(np.unique(mask)) == set(LABEL_VALUES)
    assert (mask == truth).mean() > 0.8
    probs = np.stack([cv2.imread(str(outputs[f"probabilities_{name}"]), cv2.IMREAD_UNCHANGED) for name in CLASSES])
    assert np.abs(probs.astype(int).sum(0) - 255).max() <= 2  # softmax channels, each rounded
    np.testing.assert_array_equal(np.asarray(LABEL_VALUES)[probs.argmax(0)][probs.max(0) > 140],
                                  mask[probs.max(0) > 140])
    overlay = cv2.cvtColor(cv2.imread(str(outputs["overlay"])), cv2.COLOR_BGR2RGB)
    for k in (1, 2):  # each class outlined in its own colour
        assert (overlay == np.array(class_colour(k), np.uint8)).all(-1).any(), k


def test_ukan_monitor_on_multiclass_data_is_one_line_before_anything_is_written(multiclass_run, tmp_path):
    from kanseg.errors import KansegError

    cfg, _, _ = multiclass_run
    bad = cfg.model_copy(deep=True)
    bad.monitor, bad.out = "ukan_iou", str(tmp_path / "run")
    with pytest.raises(KansegError, match="binary published-table protocol; this dataset has 2 foreground classes"):
        train(bad)
    assert not (tmp_path / "run").exists()
