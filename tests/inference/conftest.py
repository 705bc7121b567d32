"""Small real checkpoints (``unet-conv``, 2 levels, width 4) for the inference tests."""

import nibabel as nib
import numpy as np
import pytest
import torch

from kanseg.checkpoint import save_checkpoint
from kanseg.cli import main
from kanseg.models import create_model

RGB_INTENSITY = {"kind": "range", "a_min": 0.0, "a_max": 255.0, "mean": [0.485, 0.456, 0.406],
                 "std": [0.229, 0.224, 0.225]}


NIFTI_GRID_KEYS = ("qform_code", "sform_code", "xyzt_units", "pixdim", "srow_x", "srow_y", "srow_z")


def assert_mask_on_input_grid(mask_path, source_path):
    """A written uint8 NIfTI mask has the input's shape, affine and grid header fields; returns (reference, mask)."""
    ref, mask = nib.load(source_path), nib.load(mask_path)
    assert mask.shape == ref.shape and mask.get_data_dtype() == np.uint8
    np.testing.assert_array_equal(mask.affine, ref.affine)
    for key in NIFTI_GRID_KEYS:
        np.testing.assert_array_equal(mask.header[key], ref.header[key], err_msg=key)
    return ref, mask


def small_model_kwargs(spatial_dims: int, in_channels: int) -> dict:
    return {"spatial_dims": spatial_dims, "in_channels": in_channels, "out_channels": 1, "depth": 2, "base_width": 4}


def make_checkpoint(path, spatial_dims: int, in_channels: int, preprocessing: dict, seed: int = 0):
    """Save a randomly initialised ``unet-conv`` with a non-trivial head bias, so masks are mixed."""
    torch.manual_seed(seed)
    kwargs = small_model_kwargs(spatial_dims, in_channels)
    model = create_model("unet-conv", **kwargs)
    return save_checkpoint(path, model_name="unet-conv", model_kwargs=kwargs, state_dict=model.state_dict(),
                           preprocessing={"spatial_dims": spatial_dims, "in_channels": in_channels, **preprocessing})


@pytest.fixture(scope="session")
def checkpoint_2d(tmp_path_factory):
    """2D RGB model trained (nominally) at 32x32 with the RGB intensity of the datasets."""
    path = tmp_path_factory.mktemp("ckpt2d") / "best.pt"
    return make_checkpoint(path, 2, 3, {"image_size": [32, 32], "intensity": RGB_INTENSITY})


@pytest.fixture(scope="session")
def checkpoint_3d(tmp_path_factory):
    """3D one-channel model with z-score intensity and 16^3 training patches."""
    path = tmp_path_factory.mktemp("ckpt3d") / "best.pt"
    return make_checkpoint(path, 3, 1, {"image_size": None, "patch_size": [16, 16, 16],
                                        "intensity": {"kind": "zscore"}})


@pytest.fixture
def run_cli(capsys):
    """Run ``kanseg predict ARGS`` through the real entry point; returns (exit code, stdout + stderr)."""

    def run(*args):
        with pytest.raises(SystemExit) as exit_info:
            main(["predict", *map(str, args)])
        captured = capsys.readouterr()
        return exit_info.value.code, captured.out + captured.err

    return run
