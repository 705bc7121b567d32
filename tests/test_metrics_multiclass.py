"""Per-class metrics (several foreground classes) against hand-computed values, 2D and 3D."""

import json
import math

import numpy as np
import pytest
import torch

from kanseg.metrics import case_metrics, format_report, monitor_value, summarize

NAMES = ["background", "a", "b", "c"]


def _map(shape, *regions):
    """Class-index map: ``regions`` are (class, index) pairs painted in order."""
    m = np.zeros(shape, dtype=np.uint8)
    for k, where in regions:
        m[where] = k
    return m


# case 1: a = 4 of 6 GT pixels found; b = all 6 GT pixels + 3 false positives; c absent from both
GT_1 = _map((6, 6), (1, (slice(0, 2), slice(0, 3))), (2, (slice(3, 5), slice(3, 6))))
PRED_1 = _map((6, 6), (1, (slice(0, 2), slice(0, 2))), (2, (slice(3, 6), slice(3, 6))))
# case 2: a = one pixel each, 5 px apart; b empty in both; c only in the ground truth
GT_2 = _map((6, 6), (1, (0, 0)), (3, (5, 5)))
PRED_2 = _map((6, 6), (1, (3, 4)))

HAND_1 = {"a": (0.8, 2 / 3, 4, 0, 2), "b": (0.8, 2 / 3, 6, 3, 0), "c": (1.0, 1.0, 0, 0, 0)}
HAND_2 = {"a": (0.0, 0.0, 0, 1, 1), "b": (1.0, 1.0, 0, 0, 0), "c": (0.0, 0.0, 0, 0, 1)}


@pytest.mark.parametrize("gt,pred,hand", [(GT_1, PRED_1, HAND_1), (GT_2, PRED_2, HAND_2)], ids=["overlap", "empty"])
def test_per_class_case_metrics_match_hand_values(gt, pred, hand):
    row = case_metrics(pred, gt, class_names=NAMES)
    assert list(row["per_class"]) == ["a", "b", "c"]
    for name, (dice, iou, tp, fp, fn) in hand.items():
        scores = row["per_class"][name]
        assert scores["dice"] == pytest.approx(dice) and scores["iou"] == pytest.approx(iou), name
        assert (scores["tp"], scores["fp"], scores["fn"]) == (tp, fp, fn), name
        # each class is exactly the binary score of "class k vs rest"
        k = NAMES.index(name)
        assert scores == pytest.approx(case_metrics(pred == k, gt == k), nan_ok=True)
    assert row["dice"] == pytest.approx(np.mean([h[0] for h in hand.values()]))
    assert row["iou"] == pytest.approx(np.mean([h[1] for h in hand.values()]))
    assert (row["tp"], row["fp"], row["fn"]) == tuple(sum(h[i] for h in hand.values()) for i in (2, 3, 4))


def test_per_class_hd95_follows_the_empty_rules():
    row = case_metrics(PRED_2, GT_2, class_names=NAMES)
    hd = {name: s["hd95"] for name, s in row["per_class"].items()}
    assert hd["a"] == pytest.approx(5.0)  # (0, 0) vs (3, 4)
    assert hd["b"] == 0.0  # empty in both
    assert hd["c"] == pytest.approx(math.sqrt(6**2 + 6**2))  # only in the ground truth: image diagonal
    assert row["hd95"] == pytest.approx((5.0 + 0.0 + math.sqrt(72)) / 3)
    assert math.isnan(case_metrics(PRED_2, GT_2, class_names=NAMES, with_hd95=False)["per_class"]["a"]["hd95"])


def test_per_class_3d_with_spacing():
    gt = np.zeros((3, 4, 5), np.uint8)
    pred = np.zeros_like(gt)
    gt[0:2, 0:2, 0:2] = 1  # 8 voxels
    pred[0:2, 0:2, 0:1] = 1  # 4 of them
    gt[2, 0, 0], pred[0, 3, 4] = 2, 2  # one voxel each, (2, 3, 4) voxels apart
    row = case_metrics(torch.from_numpy(pred), torch.from_numpy(gt), spacing=(1.0, 2.0, 0.5),
                       class_names=["background", "x", "y"])
    assert row["per_class"]["x"]["dice"] == pytest.approx(8 / 12) and row["per_class"]["x"]["iou"] == pytest.approx(0.5)
    assert row["per_class"]["y"]["dice"] == 0.0
    assert row["per_class"]["y"]["hd95"] == pytest.approx(math.sqrt(2**2 + 6**2 + 2**2))
    assert row["dice"] == pytest.approx(1 / 3)


def test_one_foreground_class_is_binary():
    gt, pred = (GT_1 == 1), (PRED_1 == 1)
    assert case_metrics(pred, gt, class_names=["background", "lesion"]) == case_metrics(pred, gt)
    assert "per_class" not in case_metrics(pred, gt, class_names=None)


def test_summary_per_class_and_foreground_means():
    rows = [{"id": str(i), "index": i, **case_metrics(p, g, class_names=NAMES)}
            for i, (g, p) in enumerate([(GT_1, PRED_1), (GT_2, PRED_2)])]
    report = summarize(rows)
    assert report["classes"] == ["a", "b", "c"]
    pc = report["per_class"]
    assert [pc[n]["per_image"]["dice"]["mean"] for n in "abc"] == pytest.approx([0.4, 0.9, 0.5])
    assert pc["b"]["per_image"]["iou"]["std"] == pytest.approx(np.std([2 / 3, 1.0]))
    # global per class: a: tp 4, fp 1, fn 3; b: tp 6, fp 3, fn 0; c: tp 0, fp 0, fn 1
    assert [pc[n]["global"]["dice"] for n in "abc"] == pytest.approx([8 / 12, 12 / 15, 0.0])
    assert [pc[n]["global"]["iou"] for n in "abc"] == pytest.approx([4 / 8, 6 / 9, 0.0])
    assert report["per_image"]["dice"]["mean"] == pytest.approx(0.6)  # mean of per-case foreground means
    assert report["global"]["dice"] == pytest.approx((8 / 12 + 12 / 15) / 3)
    assert report["global"]["iou"] == pytest.approx((0.5 + 2 / 3) / 3)
    assert monitor_value(report, "dice") == pytest.approx(0.6)
    assert "ukan_compat" not in report and "per_class" in report["aggregations"]
    text = format_report(report)
    assert all(f"\n{name} " in text for name in "abc") and "per-class" in text
    json.dumps(rows), json.dumps(report)  # summary.json material
