"""SegmentationDataset contract: demo, augmentation seeding, generic 2D/3D dataset.json, cache."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from kanseg.data import build_dataset, preprocess_image
from kanseg.data.verify import prepare
from kanseg.errors import KansegError


@pytest.fixture(scope="module")
def demo_root(tmp_path_factory):
    return tmp_path_factory.mktemp("demo") / "data"


def test_demo_contract(demo_root):
    sizes = {s: len(build_dataset("demo", data_root=demo_root, subset=s)) for s in ("train", "val", "test")}
    assert sizes == {"train": 24, "val": 8, "test": 8}
    val = build_dataset("demo", data_root=demo_root, subset="val")
    item = val[0]
    assert item["image"].shape == (3, 64, 64) and item["image"].dtype == torch.float32
    assert item["label"].shape == (1, 64, 64) and set(item["label"].unique().tolist()) == {0.0, 1.0}
    assert item["id"] == val.ids[0] and val.spatial_dims == 2 and val.in_channels == 3
    assert json.loads(json.dumps(val.preprocessing)) == val.preprocessing
    assert val.preprocessing["image_size"] == [64, 64] and val.preprocessing["spatial_dims"] == 2
    native = val.native_label(0)
    assert native.dtype == bool and native.shape == (64, 64)
    np.testing.assert_array_equal(native, item["label"][0].numpy() > 0)
    # Inference preprocessing of the raw image reproduces the evaluation input exactly.
    image = val.native_image(0)
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    torch.testing.assert_close(preprocess_image(image, val.preprocessing), item["image"])
    # Foreground is brighter than background: the demo is learnable.
    assert item["image"][:, item["label"][0] > 0].mean() > item["image"][:, item["label"][0] == 0].mean() + 0.5


def test_demo_default_root_is_generated_once(monkeypatch, tmp_path):
    monkeypatch.setenv("KANSEG_CACHE", str(tmp_path))
    first = build_dataset("demo", subset="val")
    stamp = (tmp_path / "demo-v1" / "dataset.json").stat().st_mtime_ns
    second = build_dataset("demo", subset="val")
    assert (tmp_path / "demo-v1" / "dataset.json").stat().st_mtime_ns == stamp
    torch.testing.assert_close(first[3]["image"], second[3]["image"])


def test_preprocess_image_adapts_channels_and_resizes(demo_root):
    pp = build_dataset("demo", data_root=demo_root, subset="val", image_size=32).preprocessing
    grey = np.full((50, 70), 128, np.uint8)
    out = preprocess_image(grey, pp)
    assert out.shape == (3, 32, 32)
    expected = (128 / 255 - torch.tensor(pp["intensity"]["mean"])) / torch.tensor(pp["intensity"]["std"])
    torch.testing.assert_close(out[:, 5, 5], expected.float(), atol=1e-4, rtol=0)
    rgba = np.dstack([np.full((40, 40, 3), 128, np.uint8), np.zeros((40, 40), np.uint8)])
    torch.testing.assert_close(preprocess_image(rgba, pp), preprocess_image(np.full((40, 40, 3), 128, np.uint8), pp))
    with pytest.raises(KansegError, match="expected a 2D image"):
        preprocess_image(np.zeros((2, 3, 4, 5)), pp)


def test_augmentation_is_seeded_per_epoch_and_item(demo_root):
    def items(seed, epoch):
        dataset = build_dataset("demo", data_root=demo_root, augment=True, seed=seed)
        dataset.set_epoch(epoch)
        return [dataset[i] for i in range(6)]

    a, b, c = items(0, 0), items(0, 0), items(0, 1)
    assert all(torch.equal(x["image"], y["image"]) and torch.equal(x["label"], y["label"]) for x, y in zip(a, b))
    assert any(not torch.equal(x["image"], y["image"]) for x, y in zip(a, c))
    plain = build_dataset("demo", data_root=demo_root)
    assert any(not torch.equal(x["image"], plain[i]["image"]) for i, x in enumerate(a))
    for x in a + c:  # geometry stays label-aligned: labels stay binary and non-empty
        assert set(x["label"].unique().tolist()) <= {0.0, 1.0} and x["label"].sum() > 0
    # Without set_epoch, items follow torch's global RNG.
    dataset = build_dataset("demo", data_root=demo_root, augment=True)
    torch.manual_seed(5)
    first = [dataset[i]["image"] for i in range(4)]
    torch.manual_seed(5)
    assert all(torch.equal(x, dataset[i]["image"]) for i, x in enumerate(first))


def test_non_square_size_keeps_batch_shape(demo_root):
    dataset = build_dataset("demo", data_root=demo_root, augment=True, image_size=(32, 48))
    dataset.set_epoch(0)
    assert {tuple(dataset[i]["image"].shape) for i in range(len(dataset))} == {(3, 32, 48)}


@pytest.mark.parametrize("style", ["decathlon", "nnunet"])
def test_generic_2d_dataset_json(synthetic, style):
    root = synthetic("decathlon2d", n_cases=10, size=40, style=style)
    train = build_dataset(root / "dataset.json", subset="train", image_size=40)
    test = build_dataset(root, subset="test", image_size=40)
    assert (len(train), len(test)) == (6, 2) and not set(train.ids) & set(test.ids)
    assert train[0]["image"].shape == (3, 40, 40) and train.cases[0].image[0].name.endswith(
        "_0000.png" if style == "nnunet" else ".png")
    random_val = build_dataset(root, split="random-3", subset="val")
    assert len(random_val) == 2 and len(build_dataset(root, split="random-3")) == 8


def test_generic_3d_nifti_patches_and_whole_volumes(synthetic):
    root = synthetic("nifti3d", n_cases=5, shape=(20, 18, 12))
    train = build_dataset(root, subset="train", patch_size=(16, 16, 8), augment=True)
    train.set_epoch(0)
    item = train[0]
    assert item["image"].shape == (1, 16, 16, 8) and item["label"].shape == (1, 16, 16, 8)
    assert train.preprocessing["spatial_dims"] == 3 and train.preprocessing["image_size"] is None
    val = build_dataset(root, subset="val")
    volume = val[0]
    assert volume["image"].shape == (1, 20, 18, 12) and volume["label"].shape == (1, 20, 18, 12)
    assert abs(float(volume["image"].mean())) < 1e-4 and abs(float(volume["image"].std()) - 1) < 1e-2  # z-score
    np.testing.assert_array_equal(val.native_label(0), volume["label"][0].numpy() > 0)
    assert val.native_image(0).shape == (20, 18, 12, 1) and val.spacing(0) == (1.0, 1.0, 2.0)
    torch.testing.assert_close(preprocess_image(val.native_image(0)[..., 0], val.preprocessing), volume["image"])
    with pytest.raises(KansegError, match="patch size"):
        build_dataset(root, patch_size=(16, 16))


def test_prepared_cache_is_used_and_refreshed(synthetic):
    root = synthetic("busi", n_cases=6)
    plain = build_dataset("busi", data_root=root, split="all", image_size=32)
    folder, count = prepare("busi", root, image_size=32)
    assert count == 6 and len(list(folder.glob("*.npz"))) == 6
    cached = build_dataset("busi", data_root=root, split="all", image_size=32)
    assert cached.cache_dir == folder
    for i in range(len(cached)):
        assert torch.equal(cached[i]["label"], plain[i]["label"])
        torch.testing.assert_close(cached[i]["image"], plain[i]["image"], atol=0.5 / 255 / 0.224 + 1e-6, rtol=0)
    path = cached.cases[0].image[0]
    os.utime(path, (path.stat().st_atime, path.stat().st_mtime + 10))  # a changed source file
    assert torch.equal(cached[0]["image"], plain[0]["image"])


@pytest.mark.parametrize("kwargs,message", [
    ({"name_or_path": "nope"}, "unknown dataset 'nope'; valid: busi, cvc, glas, demo"),
    ({"name_or_path": "demo", "split": "bogus"}, "unknown split 'bogus' for demo; valid: default, random-<seed>, fold<0..4>, all"),
    ({"name_or_path": "demo", "subset": "dev"}, "unknown subset 'dev'; valid: train, val, test"),
    ({"name_or_path": "demo", "image_size": (8, 8, 8)}, "image size .* does not fit a 2D dataset"),
])
def test_bad_arguments_are_one_line_errors(demo_root, kwargs, message):
    with pytest.raises(KansegError, match=message):
        build_dataset(data_root=demo_root if kwargs["name_or_path"] == "demo" else None, **kwargs)
