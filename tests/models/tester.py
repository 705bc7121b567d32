"""Base tester shared by the template tests (smp style): one small subclass per template."""

from __future__ import annotations

from typing import ClassVar

import pytest
import torch

from kanseg.checkpoint import build_model, load_checkpoint, save_checkpoint
from kanseg.models import create_model

# Odd sizes everywhere: the templates pad to a multiple of 2^(depth-1) and crop back.
SIZES = {2: (35, 29), 3: (17, 18, 19)}
TINY = dict(depth=3, base_width=4)


def outputs(y: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return y if isinstance(y, list) else [y]



def check_save_load(tmp_path, preset: str, kwargs: dict, warm_size: int) -> None:
    """A checkpoint of ``preset(**kwargs)`` rebuilds the same model: weights and BatchNorm running stats (made
    non-trivial by one train-mode pass at ``warm_size``), bit-equal outputs on an odd size."""
    model = create_model(preset, **kwargs)
    with torch.no_grad():
        model.train()(torch.randn(2, 1, warm_size, warm_size))
    model.eval()
    path = save_checkpoint(tmp_path / "m.pt", model_name=preset, model_kwargs=kwargs, state_dict=model.state_dict())
    restored = build_model(load_checkpoint(path))
    x = torch.randn(1, 1, 27, 30)
    torch.testing.assert_close(restored(x), model(x), rtol=0, atol=0)

class ModelTester:
    """Subclasses set the template and a preset of it; every test builds tiny variants of that preset."""

    template: ClassVar[type]
    preset: ClassVar[str]
    blocks: ClassVar[tuple[str, ...]] = ("conv", "kan:gram", "kan:chebyshev", "kan:gram-bottleneck")

    def build(self, **overrides) -> torch.nn.Module:
        torch.manual_seed(0)
        model = create_model(self.preset, **{**TINY, **overrides})
        assert type(model) is self.template
        return model

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    @pytest.mark.parametrize("block", blocks)
    def test_forward_backward_odd_size(self, block, spatial_dims):
        model = self.build(spatial_dims=spatial_dims, in_channels=2, out_channels=3, encoder_block=block)
        x = torch.randn(2, 2, *SIZES[spatial_dims])
        ys = outputs(model(x))
        for y in ys:
            assert y.shape == (2, 3, *SIZES[spatial_dims])
            assert torch.isfinite(y).all()
        sum(y.square().mean() for y in ys).backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"no or non-finite gradient for {missing[:5]}"
        first = next(model.encoder.parameters())
        assert first.grad.abs().sum() > 0

    def test_padding_keeps_size_and_last_pixel_matters(self):
        # 35x29 is padded to 36x32 and cropped back; the last real pixel must still reach the output.
        model = self.build(block_options={"norm": "group"}).eval()
        x = torch.randn(1, 3, *SIZES[2])
        y = model(x)
        x2 = x.clone()
        x2[..., -1, -1] += 5.0
        assert not torch.allclose(model(x2), y)
        assert y.shape[-2:] == x.shape[-2:]

    def test_kan_encoder_conv_decoder(self):
        from kanseg.kan import KANConv

        model = self.build(encoder_block="kan:gram", decoder_block="conv", encoder_block_options={"degree": 2})
        assert any(isinstance(m, KANConv) for m in model.encoder.modules())
        assert not any(isinstance(m, KANConv) for m in model.decoder.modules())
        assert all(m.basis.degree == 2 for m in model.encoder.modules() if isinstance(m, KANConv))
        assert model(torch.randn(1, 3, 20, 21)).shape == (1, 1, 20, 21)

    def test_wrong_input_channels_is_a_clear_error(self):
        from kanseg.errors import KansegError

        model = self.build(in_channels=3)
        with pytest.raises(KansegError, match=r"expects input \(B, 3"):
            model(torch.randn(1, 1, 16, 16))

    def test_save_load_round_trip(self, tmp_path):
        kwargs = dict(TINY, spatial_dims=2, in_channels=1, out_channels=2, encoder_block="kan:gram")
        check_save_load(tmp_path, self.preset, kwargs, warm_size=24)

    def test_torch_export_2d(self):
        model = self.build(encoder_block="kan:gram").eval()
        x = torch.randn(1, 3, 35, 29)
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), model(x))


class BaselineTester:
    """The same checks for the wrapped baselines (``kanseg.models.baselines``), built tiny through ``tiny``."""

    template: ClassVar[type]
    preset: ClassVar[str]
    tiny: ClassVar[dict] = {}

    def build(self, **overrides) -> torch.nn.Module:
        torch.manual_seed(0)
        model = create_model(self.preset, **{**self.tiny, **overrides})
        assert type(model) is self.template
        return model

    @pytest.mark.parametrize("spatial_dims", [2, 3])
    def test_forward_backward_odd_size(self, spatial_dims):
        if spatial_dims not in self.template.supported_dims:
            pytest.skip(f"{self.template.__name__} is not {spatial_dims}D")
        model = self.build(spatial_dims=spatial_dims, in_channels=2, out_channels=3)
        x = torch.randn(2, 2, *SIZES[spatial_dims])
        y = model(x)
        assert y.shape == (2, 3, *SIZES[spatial_dims]) and torch.isfinite(y).all()
        y.square().mean().backward()
        missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
        assert not missing, f"no or non-finite gradient for {missing[:5]}"

    def test_padding_keeps_size_and_last_pixel_matters(self):
        model = self.build().eval()
        x = torch.randn(1, 3, *SIZES[2])
        y = model(x)
        x2 = x.clone()
        x2[..., -1, -1] += 5.0
        assert y.shape[-2:] == x.shape[-2:]
        assert not torch.allclose(model(x2), y)

    def test_wrong_input_channels_is_a_clear_error(self):
        from kanseg.errors import KansegError

        with pytest.raises(KansegError, match=r"expects input \(B, 3"):
            self.build(in_channels=3)(torch.randn(1, 1, 32, 32))

    def test_save_load_round_trip(self, tmp_path):
        check_save_load(tmp_path, self.preset, dict(self.tiny, spatial_dims=2, in_channels=1, out_channels=2),
                        warm_size=32)

    def test_torch_export_2d(self):
        model = self.build().eval()
        x = torch.randn(1, 3, 35, 29)
        exported = torch.export.export(model, (x,))
        torch.testing.assert_close(exported.module()(x), model(x))
