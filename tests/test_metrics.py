"""kanseg.metrics against hand-computed values for every aggregation."""

import math

import numpy as np
import pytest
import torch

from kanseg.metrics import case_metrics, format_report, model_overlap, monitor_value, summarize, ukan_compat


def _mask(shape, *points_or_slices):
    m = np.zeros(shape, dtype=bool)
    for s in points_or_slices:
        m[s] = True
    return m


# (gt, pred) pairs with hand-computed native metrics
GT_SQUARE = _mask((8, 8), (slice(2, 6), slice(2, 6)))  # 16 px
PRED_HALF = _mask((8, 8), (slice(2, 4), slice(2, 6)))  # 8 px inside the square
CASES = [
    # id, gt, pred, dice, iou, hd95, tp, fp, fn
    ("half", GT_SQUARE, PRED_HALF, 2 / 3, 0.5, None, 8, 0, 8),
    ("both-empty", _mask((5, 5)), _mask((5, 5)), 1.0, 1.0, 0.0, 0, 0, 0),
    ("false-positive", _mask((6, 8)), _mask((6, 8), (0, slice(0, 3))), 0.0, 0.0, 10.0, 0, 3, 0),
    ("far-pixels", _mask((8, 8), (1, 1)), _mask((8, 8), (4, 5)), 0.0, 0.0, 5.0, 0, 1, 1),
]


@pytest.mark.parametrize("case_id,gt,pred,dice,iou,hd,tp,fp,fn", CASES, ids=[c[0] for c in CASES])
def test_case_metrics_match_hand_values(case_id, gt, pred, dice, iou, hd, tp, fp, fn):
    m = case_metrics(pred, gt)
    assert m["dice"] == pytest.approx(dice)
    assert m["iou"] == pytest.approx(iou)
    assert (m["tp"], m["fp"], m["fn"]) == (tp, fp, fn)
    if hd is not None:
        assert m["hd95"] == pytest.approx(hd)


def test_hd95_uses_spacing_and_empty_gt_gives_diagonal():
    gt, pred = _mask((8, 8), (1, 1)), _mask((8, 8), (4, 5))
    assert case_metrics(pred, gt, spacing=(2.0, 1.0))["hd95"] == pytest.approx(math.sqrt(6**2 + 4**2))
    # only the ground truth empty: diagonal of the (6, 8) image in mm with spacing (0.5, 0.5) = 5
    assert case_metrics(_mask((6, 8), (0, 0)), _mask((6, 8)), spacing=(0.5, 0.5))["hd95"] == pytest.approx(5.0)
    assert math.isnan(case_metrics(pred, gt, with_hd95=False)["hd95"])


def test_case_metrics_3d_volume():
    gt = np.zeros((4, 5, 6), bool)
    gt[1:3, 1:3, 1:3] = True  # 8 voxels
    pred = np.zeros_like(gt)
    pred[1:3, 1:3, 1:2] = True  # 4 voxels inside
    m = case_metrics(torch.from_numpy(pred), torch.from_numpy(gt))
    assert m["dice"] == pytest.approx(8 / 12) and m["iou"] == pytest.approx(0.5)


def test_shape_mismatch_is_an_error():
    with pytest.raises(ValueError, match="shape"):
        case_metrics(np.zeros((4, 4)), np.zeros((4, 5)))


def _rows():
    rows = []
    model_overlaps = [(8, 16), (0, 0), (0, 3), (0, 2)]
    for index, ((case_id, gt, pred, *_), (inter, union)) in enumerate(zip(CASES, model_overlaps)):
        row = {"id": case_id, "index": index, **case_metrics(pred, gt)}
        row.update(model_intersection=inter, model_union=union)
        rows.append(row)
    return rows


def test_summary_every_aggregation_equals_hand_computation():
    rows = _rows()
    report = summarize(rows[::-1], ukan_batch_size=3)  # order of rows must not matter (sorted by index)
    dices, ious, hds = [2 / 3, 1, 0, 0], [0.5, 1, 0, 0], [None, 0.0, 10.0, 5.0]
    hds[0] = rows[0]["hd95"]
    assert report["n_cases"] == 4
    assert report["per_image"]["dice"]["mean"] == pytest.approx(np.mean(dices))
    assert report["per_image"]["dice"]["std"] == pytest.approx(np.std(dices))
    assert report["per_image"]["iou"]["mean"] == pytest.approx(np.mean(ious))
    assert report["per_image"]["hd95"]["mean"] == pytest.approx(np.mean(hds))
    # global: tp = 8, fp = 0 + 0 + 3 + 1, fn = 8 + 0 + 0 + 1
    assert report["global"]["dice"] == pytest.approx(16 / 29)
    assert report["global"]["iou"] == pytest.approx(8 / 21)
    # ukan-compat, batches of 3 in index order: {0,1,2} -> I=8, U=19; {3} -> I=0, U=2
    s = 1e-5
    iou_a, iou_b = (8 + s) / (19 + s), s / (2 + s)
    assert report["ukan_compat"]["iou"] == pytest.approx((3 * iou_a + iou_b) / 4)
    assert report["ukan_compat"]["dice"] == pytest.approx((3 * 2 * iou_a / (1 + iou_a) + 2 * iou_b / (1 + iou_b)) / 4)
    assert "batch of 3" in report["aggregations"]["ukan_compat"]
    assert set(report["aggregations"]) == {"per_image", "global", "ukan_compat"}
    assert monitor_value(report, "iou") == pytest.approx(0.375)
    assert monitor_value(report, "ukan_iou") == report["ukan_compat"]["iou"]
    text = format_report(report)
    assert "per-image" in text and "global" in text and "ukan-compat" in text


def test_ukan_compat_batches_of_eight_default():
    rows = [{"index": i, "model_intersection": 1, "model_union": 2 if i < 8 else 4} for i in range(10)]
    out = ukan_compat(rows)
    s = 1e-5
    assert out["iou"] == pytest.approx((8 * (8 + s) / (16 + s) + 2 * (2 + s) / (8 + s)) / 10)


def test_summary_without_model_overlaps_has_no_ukan_block_and_unknown_monitor_errors():
    rows = [{k: v for k, v in r.items() if not k.startswith("model_")} for r in _rows()]
    report = summarize(rows)
    assert "ukan_compat" not in report
    with pytest.raises(ValueError, match="valid: dice, iou"):
        monitor_value(report, "accuracy")


def test_model_overlap_per_case():
    pred = torch.zeros(2, 1, 4, 4)
    gt = torch.zeros(2, 1, 4, 4)
    pred[0, 0, :2] = 1  # 8 px
    gt[0, 0, 1:3] = 1  # 8 px, 4 shared
    gt[1, 0, 0, 0] = 1
    inter, union = model_overlap(pred > 0.5, gt > 0.5)
    assert inter == [4, 0] and union == [12, 1]
