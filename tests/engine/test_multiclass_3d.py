"""Multi-class 3D end to end on generated volumes (non-identity affines, varied sizes and spacings):
a short patch training, per-class evaluation on each volume's own grid, and predict writing label
values on the input's exact grid. A smoke test: learning every class in 3D is the hippocampus config's job."""

import nibabel as nib
import numpy as np
import pytest

from kanseg.config import load_config
from kanseg.data import generate_synthetic
from kanseg.engine.trainer import train
from kanseg.inference import predict

LABEL_VALUES = (0, 2, 5)


@pytest.fixture(scope="module")
def run_3d(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("multiclass3d")
    root = generate_synthetic("multiclass3d", tmp / "data", n_cases=8, seed=1, label_values=LABEL_VALUES)
    cfg = load_config(None, {
        "data.dataset": str(root / "dataset.json"), "data.patch_size": [16, 16, 16], "model.name": "unet-conv",
        "model.kwargs": {"base_width": 4, "depth": 2}, "batch_size": 2, "optim.lr": 1e-2, "epochs": 2,
        "device": "cpu", "monitor": "dice", "out": str(tmp / "run"),
    })
    return train(cfg), root


def test_3d_evaluation_is_per_class_on_the_native_grid(run_3d):
    result, _ = run_3d
    report = result.summary["val"]["report"]
    assert report["classes"] == ["anterior", "posterior"]
    for row in result.summary["val"]["cases"]:
        scores = row["per_class"].values()
        assert row["dice"] == pytest.approx(np.mean([s["dice"] for s in scores]))
        assert all(np.isfinite(s["hd95"]) for s in scores)  # in mm, from the header's spacing
        assert row["tp"] + row["fn"] > 0  # ground truth counted on the file's own voxels


def test_3d_predict_keeps_grid_and_label_values(run_3d, tmp_path):
    result, root = run_3d
    source = sorted((root / "imagesTr").glob("*.nii.gz"))[1]  # a permuted, flipped affine
    report = predict(result.run_dir / "best.pt", source, tmp_path, save_probabilities=True, overlay=True,
                     device="cpu")
    assert report.ok, report.failures
    ref, mask = nib.load(source), nib.load(report.outcomes[0].outputs["mask"])
    assert mask.shape == ref.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_allclose(mask.affine, ref.affine)
    assert set(np.unique(np.asanyarray(mask.dataobj))) <= set(LABEL_VALUES)
    prob = nib.load(report.outcomes[0].outputs["probabilities"])
    assert prob.shape == (*ref.shape, 3)
    np.testing.assert_allclose(np.asanyarray(prob.dataobj).sum(-1), 1.0, atol=1e-4)
    assert report.outcomes[0].outputs["overlay"].is_file()
