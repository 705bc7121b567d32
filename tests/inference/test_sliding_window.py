"""Sliding-window stitching and flip TTA against whole-image inference."""

import pytest
import torch
from torch import nn

from kanseg.inference.sliding_window import (
    WindowPredictor,
    flip_combinations,
    sliding_window_probabilities,
)
from kanseg.models import create_model

from .conftest import small_model_kwargs

CASES = [(2, (37, 45)), (3, (13, 17, 19))]  # odd sizes on purpose


def small_model(spatial_dims, in_channels=2, seed=0):
    torch.manual_seed(seed)
    return create_model("unet-conv", **small_model_kwargs(spatial_dims, in_channels)).eval()


def test_flip_combinations():
    assert flip_combinations(2) == [(), (2,), (3,), (2, 3)]
    assert len(flip_combinations(3)) == 8 and len(set(flip_combinations(3))) == 8


def test_several_output_channels_get_a_softmax():
    torch.manual_seed(0)
    model = nn.Conv2d(2, 3, kernel_size=1).eval()
    image = torch.randn(2, 9, 11)
    got = sliding_window_probabilities(image, WindowPredictor(model, 2), (4, 4), overlap=0.5)
    torch.testing.assert_close(got, torch.softmax(model(image[None]), dim=1)[0].detach(), atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("spatial_dims, size", CASES)
@pytest.mark.parametrize("blend", ["gaussian", "constant"])
def test_window_covering_the_image_equals_whole_image(spatial_dims, size, blend):
    model = small_model(spatial_dims)
    image = torch.randn(2, *size)
    got = sliding_window_probabilities(image, WindowPredictor(model, spatial_dims), size, blend=blend)
    with torch.no_grad():
        want = torch.sigmoid(model(image[None]))[0]
    assert got.shape == (1, *size)
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("spatial_dims, size", CASES)
def test_pointwise_model_is_stitched_exactly_for_any_tiling(spatial_dims, size):
    """A model without spatial context must give the same map whatever the windows and blending."""
    torch.manual_seed(0)
    model = nn.Sequential(getattr(nn, f"Conv{spatial_dims}d")(2, 1, kernel_size=1)).eval()
    image = torch.randn(2, *size)
    want = torch.sigmoid(model(image[None]))[0].detach()
    for roi, overlap in [((8,) * spatial_dims, 0.5), ((5,) * spatial_dims, 0.0), ((64,) * spatial_dims, 0.25)]:
        got = sliding_window_probabilities(image, WindowPredictor(model, spatial_dims), roi, overlap=overlap,
                                           sw_batch_size=3)
        torch.testing.assert_close(got, want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("spatial_dims, size", CASES)
def test_tta_is_the_mean_over_flips(spatial_dims, size):
    model = small_model(spatial_dims, seed=1)
    image = torch.randn(2, *size)
    got = sliding_window_probabilities(image, WindowPredictor(model, spatial_dims, tta=True), size)
    with torch.no_grad():
        flips = [torch.flip(model(torch.flip(image[None], a)), a) for a in flip_combinations(spatial_dims)]
    want = torch.sigmoid(torch.stack(flips).mean(0))[0]  # mean of the logits, then the activation
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    plain = sliding_window_probabilities(image, WindowPredictor(model, spatial_dims), size)
    assert (got - plain).abs().max() > 1e-4  # the random model is not flip-invariant: TTA changed something
    # TTA makes the prediction equivariant to flips: predicting the flipped image gives the flipped map.
    flipped = sliding_window_probabilities(torch.flip(image, (1,)), WindowPredictor(model, spatial_dims, tta=True), size)
    torch.testing.assert_close(torch.flip(flipped, (1,)), got, atol=1e-5, rtol=1e-5)


def test_deep_supervision_list_output_uses_the_final_map():
    class TwoHeads(nn.Module):
        def forward(self, x):
            return [x[:, :1] * 2, x[:, :1] * 100]

    image = torch.randn(1, 6, 7)
    got = sliding_window_probabilities(image, WindowPredictor(TwoHeads(), 2), (6, 7))
    torch.testing.assert_close(got, torch.sigmoid(image * 2), atol=1e-6, rtol=1e-5)


def test_unknown_blend_mode_lists_valid_ones():
    with pytest.raises(ValueError, match="valid: gaussian, constant"):
        sliding_window_probabilities(torch.randn(1, 4, 4), WindowPredictor(nn.Identity(), 2), (4, 4), blend="cubic")


@pytest.mark.parametrize("spatial_dims, size", CASES)
def test_evaluation_and_prediction_blend_windows_alike(spatial_dims, size):
    """Validation (engine.evaluate.predict_logits) and prediction share one sliding-window call."""
    from kanseg.engine.evaluate import predict_logits
    from kanseg.inference.predictor import resize_probabilities

    model = small_model(spatial_dims)
    image = torch.randn(2, *size, generator=torch.Generator().manual_seed(0))
    roi = (8,) * spatial_dims
    evaluated = torch.sigmoid(predict_logits(model, image[None], roi_size=roi, sw_batch_size=4))[0]
    predicted = sliding_window_probabilities(image, WindowPredictor(model, spatial_dims), roi)
    assert torch.equal(evaluated, predicted)
    native = tuple(s + 3 for s in size)
    assert resize_probabilities(predicted, native).shape == (1, *native)
