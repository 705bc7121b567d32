"""`kanseg predict` outputs of multi-class models (label values, per-class probabilities, colours) and
the binary outputs kept exactly as before."""

import cv2
import nibabel as nib
import numpy as np
import pytest
import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.inference import Predictor, predict
from kanseg.inference.overlays import (
    OVERLAY_ALPHA,
    OVERLAY_COLOUR,
    class_colour,
    overlay_mask,
)
from kanseg.inference.writers import label_map

from .conftest import assert_mask_on_input_grid
from .test_predict import write_volume

CLASSES = ["background", "left part", "right"]
LABEL_VALUES = [0, 3, 7]


class IntensityClasses(nn.Module):
    """(B, 1, *S) -> 3 logits: class 0 below -0.5, class 2 above 0.5, class 1 in between."""

    def forward(self, x):
        return torch.cat([-(x + 0.5) * 8, torch.zeros_like(x), (x - 0.5) * 8], dim=1)


def _predictor(classes=CLASSES, label_values=LABEL_VALUES):
    preprocessing = {"spatial_dims": 3, "in_channels": 1, "intensity": {"kind": "zscore"}, "image_size": None,
                     "classes": classes, "label_values": label_values}
    return Predictor(IntensityClasses(), preprocessing, roi_size=16, device="cpu")


def test_3d_label_map_keeps_grid_and_writes_label_values(tmp_path):
    source = write_volume(tmp_path / "case.nii.gz")
    report = predict(_predictor(), source, tmp_path / "out", save_probabilities=True, overlay=True)
    assert report.ok, report.failures
    ref, mask = assert_mask_on_input_grid(tmp_path / "out" / "case_mask.nii.gz", source)
    values = np.asanyarray(mask.dataobj)
    assert set(np.unique(values)) == set(LABEL_VALUES)  # every class present, stored as its value
    prob = nib.load(tmp_path / "out" / "case_prob.nii.gz")
    assert prob.shape == (*ref.shape, 3) and prob.get_data_dtype() == np.float32
    np.testing.assert_array_equal(prob.affine, ref.affine)
    np.testing.assert_array_equal(prob.header.get_zooms()[:3], ref.header.get_zooms()[:3])
    p = np.asanyarray(prob.dataobj)
    np.testing.assert_allclose(p.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.asarray(LABEL_VALUES)[p.argmax(-1)], values)
    overlay = cv2.cvtColor(cv2.imread(str(tmp_path / "out" / "case_overlay.png")), cv2.COLOR_BGR2RGB)
    for k in (1, 2):
        assert (overlay == np.array(class_colour(k), np.uint8)).all(-1).any(), k


def test_2d_probabilities_one_png_per_class_with_safe_names(tmp_path):
    preprocessing = {"spatial_dims": 2, "in_channels": 1, "intensity": {"kind": "zscore"}, "image_size": None,
                     "classes": CLASSES, "label_values": LABEL_VALUES}
    predictor = Predictor(IntensityClasses(), preprocessing, device="cpu")
    image = np.random.default_rng(0).integers(0, 255, size=(23, 31), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "a.png"), image)
    outputs = predict(predictor, [tmp_path / "a.png"], tmp_path / "out", save_probabilities=True).outcomes[0].outputs
    assert sorted(outputs) == ["mask", "probabilities_background", "probabilities_left-part", "probabilities_right"]
    assert outputs["probabilities_left-part"].name == "a_prob_left-part.png"
    mask = cv2.imread(str(outputs["mask"]), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (23, 31) and set(np.unique(mask)) == set(LABEL_VALUES)


def test_class_count_mismatch_is_one_line(tmp_path):
    source = write_volume(tmp_path / "case.nii.gz")
    report = predict(_predictor(classes=["background", "a", "b", "c"], label_values=[0, 1, 2, 3]), source, tmp_path)
    assert not report.ok and "names 4 classes but its model has 3 outputs" in report.failures[0].error


def test_label_map():
    mask = np.array([[0, 1], [2, 1]], np.uint8)
    np.testing.assert_array_equal(label_map(mask, [0, 3, 7]), [[0, 3], [7, 3]])
    np.testing.assert_array_equal(label_map(mask), mask)
    with pytest.raises(KansegError, match="8-bit"):
        label_map(mask, [0, 1, 300])
    with pytest.raises(KansegError, match="no label value"):
        label_map(mask, [0, 1])


def _overlay_before(image, mask):
    """The binary overlay as it was before multi-class (frozen copy): the regression oracle."""
    from kanseg.inference.overlays import to_display_uint8

    picture = to_display_uint8(image)
    foreground = mask > 0
    colour = np.array(OVERLAY_COLOUR, dtype=np.float32)
    picture[foreground] = ((1 - OVERLAY_ALPHA) * picture[foreground] + OVERLAY_ALPHA * colour).astype(np.uint8)
    contours, _ = cv2.findContours(foreground.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(picture, contours, -1, OVERLAY_COLOUR, thickness=1)
    return picture


@pytest.mark.parametrize("dtype", [np.uint8, bool])
def test_binary_overlay_is_unchanged(dtype):
    rng = np.random.default_rng(1)
    image = rng.integers(0, 255, size=(40, 50, 3), dtype=np.uint8)
    mask = np.zeros((40, 50), dtype)
    mask[5:20, 8:30] = 1
    mask[25:35, 35:45] = 1
    np.testing.assert_array_equal(overlay_mask(image, mask), _overlay_before(image, mask))
    assert class_colour(1) == OVERLAY_COLOUR
