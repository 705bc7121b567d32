"""End to end in 3D: `kanseg train` on a generic NIfTI dataset.json with patch sampling, then
`kanseg predict` on a full volume."""

import nibabel as nib
import numpy as np
import pytest
import yaml

from kanseg.cli import main
from kanseg.data import generate_synthetic


def kanseg(*args):
    with pytest.raises(SystemExit) as exit_info:
        main([str(a) for a in args])
    return exit_info.value.code


def test_train_on_patches_then_predict_the_whole_volume(tmp_path, capsys):
    root = generate_synthetic("nifti3d", tmp_path / "data", n_cases=4, seed=0)  # 24x24x16 volumes
    config = tmp_path / "tiny3d.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"dataset": str(root / "dataset.json"), "image_size": None, "patch_size": [16, 16, 8],
                 "augment": False},
        "model": {"name": "unet-conv", "kwargs": {"depth": 2, "base_width": 4}},
        "epochs": 2, "batch_size": 2, "device": "cpu",
    }))
    assert kanseg("train", "--config", config, "--out", tmp_path / "run") == 0
    volume = sorted((root / "imagesTr").glob("*.nii.gz"))[0]

    code = kanseg("predict", "-c", tmp_path / "run" / "best.pt", volume, "-o", tmp_path / "pred",
                  "--roi", 16, 16, 8, "--overlay")
    assert code == 0, capsys.readouterr().err
    source, mask = nib.load(volume), nib.load(tmp_path / "pred" / volume.name.replace(".nii.gz", "_mask.nii.gz"))
    assert mask.shape == source.shape == (24, 24, 16)
    np.testing.assert_array_equal(mask.affine, source.affine)
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1}
    assert (tmp_path / "pred" / volume.name.replace(".nii.gz", "_overlay.png")).is_file()
