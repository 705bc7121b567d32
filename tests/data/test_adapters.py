"""Adapters on generated copies of each official layout and of the U-KAN layout."""

from __future__ import annotations

import shutil

import cv2
import numpy as np
import pytest

from kanseg.data import build_dataset, generate_synthetic, open_source
from kanseg.errors import KansegError


def _grey(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)


def test_busi_official_layout_merges_masks_and_hides_normal(synthetic):
    root = synthetic("busi", n_cases=12)
    source = open_source("busi", root)
    assert source.root.name == "Dataset_BUSI_with_GT"
    assert sorted(source.cases) == sorted(f"{c} ({k})" for c in ("benign", "malignant") for k in range(1, 5))
    assert len(open_source("busi", root, include_normal=True).cases) == 12
    dataset = build_dataset("busi", data_root=root, split="all", include_normal=True)
    for case_id in ("benign (2)", "malignant (2)"):  # an extra _mask_1.png each
        case = dataset.cases[dataset.ids.index(case_id)]
        assert [p.name for p in case.label] == [f"{case_id}_mask.png", f"{case_id}_mask_1.png"]
        expected = (_grey(case.label[0]) > 0) | (_grey(case.label[1]) > 0)
        assert (_grey(case.label[1]) > 0).sum() > 0 and ((_grey(case.label[1]) > 0) & ~(_grey(case.label[0]) > 0)).any()
        np.testing.assert_array_equal(dataset.native_label(dataset.ids.index(case_id)), expected)
    rgba = dataset.ids.index("benign (3)")  # RGBA mask with an opaque alpha channel
    assert cv2.imread(str(dataset.cases[rgba].label[0]), cv2.IMREAD_UNCHANGED).shape[2] == 4
    label = dataset.native_label(rgba)
    assert 0 < label.mean() < 0.5
    np.testing.assert_array_equal(label, _grey(dataset.cases[rgba].label[0]) > 0)
    normal = dataset.ids.index("normal (1)")
    assert dataset.cases[normal].group == "normal" and not dataset.native_label(normal).any()
    item = dataset[rgba]
    assert item["image"].shape == (3, 256, 256) and item["label"].shape == (1, 256, 256)


def test_glas_instance_maps_are_binarised(synthetic):
    root = synthetic("glas", n_cases=6)
    source = open_source("glas", root)
    assert {c.group for c in source.cases.values()} == {"train", "testA", "testB"}
    dataset = build_dataset("glas", data_root=root, split="all", image_size=64)
    anno = cv2.imread(str(dataset.cases[0].label[0]), cv2.IMREAD_UNCHANGED)
    assert anno.max() >= 1 and set(np.unique(anno)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(dataset.native_label(0), (anno if anno.ndim == 2 else anno[..., 0]) > 0)
    assert dataset.preprocessing["image_size"] == [64, 64]


@pytest.mark.parametrize("fmt", ["tif", "png"])
def test_cvc_masks_are_thresholded_above_127(synthetic, fmt):
    root = synthetic("cvc", n_cases=3, fmt=fmt)
    dataset = build_dataset("cvc", data_root=root, split="all")
    assert dataset.ids == ["1", "2", "3"]
    raw = cv2.imread(str(dataset.cases[0].label[0]), cv2.IMREAD_UNCHANGED)
    assert raw.ndim == (3 if fmt == "png" else 2) and 90 in np.unique(raw)  # grey edge pixels exist
    grey = raw[..., 0] if raw.ndim == 3 else raw
    np.testing.assert_array_equal(dataset.native_label(0), grey == 255)


def test_ukan_layout_is_read_by_each_adapter(synthetic):
    cvc = synthetic("ukan", n_cases=3)
    assert sorted(open_source("cvc", cvc).cases) == ["1", "2", "3"]
    busi = synthetic("ukan", n_cases=2, mask_suffix="_mask", ids=("benign (7)", "malignant (2)"))
    source = open_source("busi", busi)
    assert {c.id: c.group for c in source.cases.values()} == {"benign (7)": "benign", "malignant (2)": "malignant"}
    assert source.cases["benign (7)"].label[0].name == "benign (7)_mask.png"


@pytest.mark.parametrize("name", ["busi", "glas", "cvc"])
def test_missing_root_names_layout_and_download(tmp_path, name):
    with pytest.raises(KansegError, match=r"not found under .*expected the official layout .*download it from http"):
        build_dataset(name, data_root=tmp_path / "nowhere")
    with pytest.raises(KansegError, match="U-KAN layout"):
        build_dataset(name, data_root=tmp_path)  # exists, but empty


def test_image_without_mask_and_mask_of_other_size(synthetic, tmp_path):
    root = shutil.copytree(synthetic("cvc", n_cases=3, fmt="png"), tmp_path / "cvc")
    (root / "Ground Truth" / "2.png").unlink()
    with pytest.raises(KansegError, match=r"case '2': mask file missing: .*2.png"):
        build_dataset("cvc", data_root=root, split="all")
    generate_synthetic("cvc", tmp_path / "other", n_cases=1, fmt="png", size=32)
    shutil.copy(tmp_path / "other" / "Ground Truth" / "1.png", root / "Ground Truth" / "2.png")
    dataset = build_dataset("cvc", data_root=root, split="all")
    with pytest.raises(KansegError, match=r"mask .*2.png is 32x24 but image .*2.png is 48x36"):
        dataset[1]


def test_split_that_needs_absent_cases_says_so(synthetic):
    with pytest.raises(KansegError, match=r"cases of busi split 'legacy-2981'/val are not under .*kanseg data verify"):
        build_dataset("busi", data_root=synthetic("busi", n_cases=12), split="legacy-2981", subset="val")
