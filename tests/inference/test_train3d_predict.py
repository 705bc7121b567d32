"""End to end in 3D: train on a generic NIfTI dataset.json with patch sampling, predict a full volume."""

import nibabel as nib
import numpy as np

from kanseg.config import DataConfig, ModelConfig, TrainConfig
from kanseg.data import generate_synthetic
from kanseg.engine.trainer import train
from kanseg.inference import predict


def test_train_on_patches_then_predict_the_whole_volume(tmp_path):
    root = generate_synthetic("nifti3d", tmp_path / "data", n_cases=4, seed=0)  # 24x24x16 volumes
    cfg = TrainConfig(
        data=DataConfig(dataset=str(root / "dataset.json"), image_size=None, patch_size=[16, 16, 8], augment=False),
        model=ModelConfig(name="unet-conv", kwargs={"depth": 2, "base_width": 4}),
        epochs=2, batch_size=2, device="cpu", out=str(tmp_path / "run"),
    )
    train(cfg)
    checkpoint = tmp_path / "run" / "best.pt"
    volume = sorted((root / "imagesTr").glob("*.nii.gz"))[0]

    report = predict(checkpoint, volume, tmp_path / "pred", roi_size=(16, 16, 8), overlap=0.5, overlay=True)
    assert report.ok, report.failures
    source, mask = nib.load(volume), nib.load(tmp_path / "pred" / volume.name.replace(".nii.gz", "_mask.nii.gz"))
    assert mask.shape == source.shape == (24, 24, 16)
    np.testing.assert_array_equal(mask.affine, source.affine)
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= {0, 1}
