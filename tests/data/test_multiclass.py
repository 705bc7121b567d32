"""Multi-class datasets: label maps from dataset.json, class-index items, 3D geometry, patch sampling."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.data import build_dataset, generate_synthetic, open_source
from kanseg.data.generic import read_label_map
from kanseg.errors import KansegError

LABEL_MAPS = [
    ({"0": "background", "1": "anterior", "2": "posterior"}, (("background", "anterior", "posterior"), (0, 1, 2))),
    ({"background": 0, "liver": 1, "tumour": 2}, (("background", "liver", "tumour"), (0, 1, 2))),
    ({"2": "b", "0": "background", "7": "a"}, (("background", "b", "a"), (0, 2, 7))),  # sorted by value
    ({"background": 0, "lesion": 255}, (("background", "lesion"), (0, 255))),
]


@pytest.mark.parametrize("labels,expected", LABEL_MAPS)
def test_label_map_decathlon_and_nnunet_styles(labels, expected, tmp_path):
    assert read_label_map({"labels": labels}, tmp_path / "dataset.json") == expected


@pytest.mark.parametrize("labels,message", [
    ({"background": 0, "tumour": [1, 2]}, "region-based labels are not supported"),
    ({"1": "a", "2": "b"}, "start with 0"),
    ({"0": "background", "x": "y"}, "neither"),
])
def test_bad_label_maps(labels, message, tmp_path):
    with pytest.raises(KansegError, match=message):
        read_label_map({"labels": labels}, tmp_path / "dataset.json")


def test_binary_datasets_keep_their_preprocessing(synthetic):
    """Two-entry label maps stay binary: no classes in the preprocessing, {0, 1} float labels."""
    dataset = build_dataset(synthetic("decathlon2d", n_cases=5), split="all", image_size=32)
    assert "classes" not in dataset.preprocessing and "label_values" not in dataset.preprocessing
    assert dataset.num_classes == 2 and dataset.class_names == ["background", "foreground"]
    assert dataset.native_label(0).dtype == bool and set(dataset[0]["label"].unique().tolist()) <= {0.0, 1.0}


@pytest.mark.parametrize("style", ["decathlon", "nnunet"])
def test_multiclass_3d_items_are_class_indices(synthetic, style):
    root = synthetic("multiclass3d", n_cases=6, label_values=(0, 2, 5), style=style)
    train = build_dataset(root, subset="train", patch_size=(12, 12, 12), augment=True)
    pp = train.preprocessing
    assert pp["classes"] == ["background", "anterior", "posterior"] and pp["label_values"] == [0, 2, 5]
    assert train.num_classes == 3 and train.class_names == pp["classes"]
    assert pp["orientation"] == "RAS" and pp["spacing"] == pp["fingerprint"]["spacing"]["median"]
    train.set_epoch(0)
    item = train[0]
    assert item["image"].shape == (1, 12, 12, 12) and item["label"].dtype == torch.float32
    assert set(item["label"].unique().tolist()) <= {0.0, 1.0, 2.0}
    val = build_dataset(root, subset="val")
    native = val.native_label(0)
    stored = np.asarray(nib.load(val.cases[0].label[0]).dataobj)
    assert native.dtype == np.uint8 and native.shape == stored.shape
    np.testing.assert_array_equal(np.array([0, 2, 5])[native], stored)
    volume = val[0]
    assert abs(float(volume["image"].mean())) < 1e-4  # z-score over the whole resampled volume (MRI)
    assert set(volume["label"].unique().tolist()) == {0.0, 1.0, 2.0}


def test_multiclass_2d_nnunet_png(synthetic):
    root = synthetic("multiclass2d", n_cases=6, label_values=(0, 1, 2))
    dataset = build_dataset(root, split="all", image_size=32, patch_size=(24, 24), augment=True)
    assert dataset.num_classes == 3 and dataset.in_channels == 1
    dataset.set_epoch(0)
    item = dataset[0]
    assert item["image"].shape == (1, 24, 24) and set(item["label"].unique().tolist()) <= {0.0, 1.0, 2.0}
    assert dataset.native_label(0).dtype == np.uint8 and dataset.native_label(0).max() == 2


def test_user_spacing_and_ct_normalisation(tmp_path):
    root = generate_synthetic("multiclass3d", tmp_path / "ct", n_cases=5, modality="CT")
    ct = build_dataset(root, split="all", subset="test", spacing=(2.0, 2.0, 2.0))
    fp = ct.preprocessing["fingerprint"]["intensity"][0]
    assert ct.preprocessing["intensity"] == {"kind": "ct", "clip": [[fp["percentile_00_5"], fp["percentile_99_5"]]],
                                             "mean": [fp["mean"]], "std": [fp["std"]]}
    assert ct.preprocessing["spacing"] == [2.0, 2.0, 2.0]
    image = ct[0]["image"]
    low, high = ((np.array([fp["percentile_00_5"], fp["percentile_99_5"]]) - fp["mean"]) / fp["std"])
    assert low - 1e-4 <= float(image.min()) and float(image.max()) <= high + 1e-4
    shape, affine = ct.native_grid(0)
    extent = np.abs(affine[:3, :3]).sum(axis=1) * np.array(shape)  # RAS extent, axis-aligned affines
    ras = np.abs(affine[:3, :3]).argmax(axis=1)
    np.testing.assert_allclose(image.shape[1:], np.round(extent[np.argsort(ras)] / 2.0), atol=1)
    assert build_dataset(root, split="all", normalization="zscore").preprocessing["intensity"] == {"kind": "zscore"}


def test_class_oversampling_yields_foreground_patches(tmp_path):
    """Small patches in volumes that are mostly background: about 1/3 of patches are centred on a
    foreground class, each class being the centre of some of them."""
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=5, shape=(40, 40, 30), vary=0)
    train = build_dataset(root, split="all", patch_size=(6, 6, 6))
    centre_classes = []
    for epoch in range(40):
        train.set_epoch(epoch)
        centre_classes.append(int(train[0]["label"][0, 3, 3, 3]))
    counts = np.bincount(centre_classes, minlength=3)
    assert counts[1] >= 3 and counts[2] >= 3 and counts[1:].sum() >= 8, counts
    volume = np.asarray(train.load_resized(0)["label"])
    assert (volume > 0).mean() < 0.2  # uniform sampling would rarely hit the classes


def test_volumes_smaller_than_the_patch_are_padded(synthetic):
    root = synthetic("multiclass3d", n_cases=6, label_values=(0, 2, 5))
    train = build_dataset(root, subset="train", patch_size=(48, 8, 40))
    train.set_epoch(1)
    assert train[0]["image"].shape == (1, 48, 8, 40)


def test_manifest_split_for_a_dataset_json(tmp_path, monkeypatch):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=5)
    ids = sorted(open_source(root).cases)
    manifests = tmp_path / "manifests"
    manifests.mkdir()
    (manifests / "mine.json").write_text(json.dumps({
        "format": "kanseg-manifest-v1", "name": "mine", "default_split": "clean", "cases": [],
        "splits": {"clean": {"train": ids[:3], "val": ids[3:4], "test": ids[4:], "note": ""}}}))
    monkeypatch.setenv("KANSEG_MANIFESTS", str(manifests))
    assert build_dataset(root, split="mine", subset="val").ids == ids[3:4]
    assert build_dataset(root, split="mine:clean", subset="test").ids == ids[4:]
    with pytest.raises(KansegError, match="no split 'other'"):
        build_dataset(root, split="mine:other")


def test_3d_augmentation_keeps_class_labels_and_is_reproducible(synthetic):
    root = synthetic("multiclass3d", n_cases=6, label_values=(0, 2, 5))
    train = build_dataset(root, subset="train", patch_size=(12, 12, 10), augment=True, elastic=True)
    names = [type(t).__name__ for t in train._finish.transforms]
    assert names[:3] == ["NormalizeIntensityd", "SpatialPadd", "RandCropByLabelClassesd"]
    assert {"RandAffined", "Rand3DElasticd", "RandAdjustContrastd", "RandGaussianNoised", "RandFlipd"} <= set(names)
    for epoch in range(6):
        train.set_epoch(epoch)
        item = train[epoch % len(train)]
        assert item["image"].shape == (1, 12, 12, 10) and set(item["label"].unique().tolist()) <= {0.0, 1.0, 2.0}
    train.set_epoch(2)
    first = train[1]["image"]
    train.set_epoch(2)
    assert torch.equal(first, train[1]["image"])


def test_3d_training_without_a_patch_size_gets_the_nnunet_like_default(synthetic):
    root = synthetic("multiclass3d", n_cases=6, label_values=(0, 2, 5))
    train, val = build_dataset(root, subset="train"), build_dataset(root, subset="val")
    patch = train.preprocessing["patch_size"]
    assert val.preprocessing == train.preprocessing and all(p % 8 == 0 and 8 <= p <= 128 for p in patch)
    shapes = []
    for epoch in range(3):  # equal-size patches, so a DataLoader can batch them
        train.set_epoch(epoch)
        shapes.append(tuple(train[epoch]["image"].shape[1:]))
    assert set(shapes) == {tuple(patch)}
    assert "patch_size" not in build_dataset(root, subset="train", patch_size=(8, 8, 8)).preprocessing
