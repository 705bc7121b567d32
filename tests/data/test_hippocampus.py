"""Three real MSD Task04 Hippocampus volumes from ../shared/data (skipped when absent)."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.data import build_dataset, open_source

pytestmark = pytest.mark.shared_data
CASES = ("hippocampus_001", "hippocampus_003", "hippocampus_004")


@pytest.fixture(scope="module")
def hippocampus(shared_dir):
    root = shared_dir / "data" / "Task04_Hippocampus"
    if not (root / "dataset.json").is_file():
        pytest.skip("Task04_Hippocampus not in ../shared/data")
    return root


@pytest.fixture(scope="module")
def three_cases(hippocampus, tmp_path_factory):
    """A dataset folder of three real cases (2 train / 1 val): links to the shared files (paths in a dataset.json
    must stay inside its folder)."""
    meta = json.loads((hippocampus / "dataset.json").read_text())
    root = tmp_path_factory.mktemp("hippo")
    training = []
    for case in CASES:
        entry = {}
        for key, folder in (("image", "imagesTr"), ("label", "labelsTr")):
            (root / folder).mkdir(exist_ok=True)
            (root / folder / f"{case}.nii.gz").symlink_to(hippocampus / folder / f"{case}.nii.gz")
            entry[key] = f"./{folder}/{case}.nii.gz"
        training.append(entry)
    meta.update(training=training, numTraining=3,
                kanseg_splits={"default": {"train": list(CASES[:2]), "val": [CASES[2]], "test": [CASES[2]]}})
    path = root / "dataset.json"
    path.write_text(json.dumps(meta))
    return path


def test_manifest_split_covers_the_208_cases(hippocampus):
    source = open_source(hippocampus)
    subsets = [source.subset_ids("hippocampus", s) for s in ("train", "val", "test")]
    assert [len(s) for s in subsets] == [148, 20, 40] and len(source.cases) == 208
    assert len(set().union(*subsets)) == 208
    assert source.classes == ("background", "Anterior", "Posterior") and source.label_values == (0, 1, 2)


def test_three_volumes_load_as_classes_on_their_grid(three_cases):
    train = build_dataset(three_cases, patch_size=(32, 48, 32), augment=True)
    pp = train.preprocessing
    assert train.num_classes == 3 and pp["spacing"] == [1.0, 1.0, 1.0] and pp["intensity"] == {"kind": "zscore"}
    train.set_epoch(0)
    item = train[0]
    assert item["image"].shape == (1, 32, 48, 32) and set(item["label"].unique().tolist()) <= {0.0, 1.0, 2.0}
    val = build_dataset(three_cases, subset="val")
    reference = nib.load(val.cases[0].label[0])
    native = val.native_label(0)
    assert native.shape == reference.shape and set(np.unique(native)) == {0, 1, 2}
    label = val[0]["label"][0].long()
    back = val.to_native(0, torch.nn.functional.one_hot(label, 3).permute(3, 0, 1, 2).float())
    np.testing.assert_array_equal(back.argmax(0).numpy(), native)  # RAS at 1 mm: the grid is the file's


def test_one_epoch_then_predict_on_the_input_grid(three_cases, tmp_path):
    from kanseg.config import load_config
    from kanseg.engine.trainer import train
    from kanseg.inference import Predictor

    cfg = load_config(None, {"data.dataset": str(three_cases), "data.patch_size": [16, 16, 16], "data.augment": True,
                             "model.name": "unet-conv", "model.kwargs": {"base_width": 4, "depth": 2}, "epochs": 1,
                             "batch_size": 2, "device": "cpu", "out": str(tmp_path / "run")})
    train(cfg)
    predictor = Predictor.from_checkpoint(tmp_path / "run" / "best.pt", device="cpu")
    source = open_source(three_cases)
    reference = nib.load(source.cases[CASES[2]].image[0])
    volume = np.asarray(reference.dataobj, dtype=np.float32)[..., None]
    mask = predictor.predict_mask(volume, affine=reference.affine)
    assert mask.shape == reference.shape and set(np.unique(mask)) <= {0, 1, 2}


def test_named_dataset_with_data_root_and_verify(hippocampus):
    from kanseg.data.verify import verify

    dataset = build_dataset("hippocampus", data_root=hippocampus, subset="val")  # the manifest's clean split
    assert len(dataset) == 20 and dataset.preprocessing["dataset"] == "hippocampus"
    report = verify("hippocampus", hippocampus)
    assert report.usable and report.found == report.expected == 208 and not report.problems
