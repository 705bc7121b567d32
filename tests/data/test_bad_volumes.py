"""Bad 3D / multi-class input: one KansegError line naming the file, before any DataLoader runs."""

from __future__ import annotations

import json

import nibabel as nib
import numpy as np
import pytest
import yaml

from kanseg.cli import main
from kanseg.data import build_dataset, generate_synthetic, open_source
from kanseg.errors import KansegError


def _rewrite(path, array=None, affine=None):
    image = nib.load(path)
    data = np.asarray(image.dataobj) if array is None else array
    nib.save(nib.Nifti1Image(data, image.affine if affine is None else affine), str(path))


def _label_value_7(case):
    data = np.asarray(nib.load(case.label[0]).dataobj).copy()
    data[0, 0, 0] = 7
    _rewrite(case.label[0], data)


def _label_shape(case):
    _rewrite(case.label[0], np.zeros((5, 5, 5), np.uint8))


def _label_affine(case):
    affine = nib.load(case.label[0]).affine.copy()
    affine[0, 3] += 2.0
    _rewrite(case.label[0], affine=affine)


def _two_channels(case):
    data = np.asarray(nib.load(case.image[0]).dataobj)
    _rewrite(case.image[0], np.stack([data, data], axis=-1))


BAD = [
    (_label_value_7, r"label values \[7\] are not in the dataset's label map \[0, 1, 2\]", "label"),
    (_label_shape, "label volume is 5x5x5 but its image", "label"),
    (_label_affine, "label affine differs from its image", "label"),
    (_two_channels, r"image has 2 channel\(s\) but dataset.json declares 1", "image"),
]


@pytest.mark.parametrize("subset", ["train", "val"])
@pytest.mark.parametrize("damage,message,kind", BAD, ids=[b[0].__name__.strip("_") for b in BAD])
def test_bad_case_is_one_line_naming_the_file(tmp_path, damage, message, kind, subset):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=5)
    case = open_source(root).cases[build_dataset(root, subset=subset).ids[0]]
    damage(case)
    with pytest.raises(KansegError, match=message) as info:
        build_dataset(root, subset=subset)  # every case is checked before a DataLoader could run
    text = str(info.value)
    assert "\n" not in text and str(getattr(case, kind)[0]) in text


def test_bad_2d_label_value(tmp_path):
    root = generate_synthetic("multiclass2d", tmp_path / "d", n_cases=5)
    label = root / "labelsTr" / "case_001.png"
    label.write_bytes((root / "labelsTr" / "case_000.png").read_bytes())
    import cv2

    cv2.imwrite(str(label), np.full((8, 8), 3, np.uint8))
    with pytest.raises(KansegError, match=r"case_001.png: label values \[3\] are not in"):
        build_dataset(root, split="all")


def test_multiclass_dataset_json_without_labels(tmp_path):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=4)
    meta = json.loads((root / "dataset.json").read_text())
    del meta["labels"]
    (root / "dataset.json").write_text(json.dumps(meta))
    with pytest.raises(KansegError, match=r"has no 'labels' map, but .*mc_000.nii.gz holds the values \[0, 1, 2\]"):
        open_source(root)


def test_volume_too_large_for_the_configured_memory(tmp_path):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=4)
    with pytest.raises(KansegError, match=r"mc_00\d.nii.gz: .* voxels need .* MB after resampling, more than "
                                          r"data.max_volume_mb=0.001"):
        build_dataset(root, max_volume_mb=0.001)
    with pytest.raises(KansegError, match="more than data.max_volume_mb=0.01"):  # finer spacing: more voxels
        build_dataset(root, max_volume_mb=0.01, spacing=(0.25, 0.25, 0.25))


def test_cli_train_reports_a_bad_label_in_one_line(tmp_path, capsys):
    root = generate_synthetic("multiclass3d", tmp_path / "d", n_cases=5)
    case = open_source(root).cases["mc_001"]
    _label_value_7(case)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"dataset": str(root / "dataset.json"), "image_size": None, "patch_size": [8, 8, 8], "split": "all"},
        "model": {"name": "unet-conv", "kwargs": {"depth": 2, "base_width": 4}}, "epochs": 1, "device": "cpu"}))
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--config", str(config), "--out", str(tmp_path / "run")])
    err = capsys.readouterr().err.strip()
    assert exit_info.value.code == 2 and err.count("\n") == 0
    assert err.startswith("error: ") and "mc_001.nii.gz" in err and "[7]" in err
    assert not (tmp_path / "run" / "best.pt").exists()
