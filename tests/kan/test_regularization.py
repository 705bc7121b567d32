"""Regularisation (spec section 3): noise only in training, dropout placements seen in the graph, penalty gradients
equal to the hand-computed ones."""

import pytest
import torch
from torch import nn

from kanseg.errors import KansegError
from kanseg.kan import create_kan_conv
from kanseg.kan.regularization import ActivationPenalty, NoiseInjection, kan_layers, weight_l1
from kanseg.models import create_block, create_model


def test_noise_only_in_training_mode():
    torch.manual_seed(0)
    noise = NoiseInjection(0.25)
    x = torch.randn(4, 3, 16, 16)
    changed = noise(x) != x
    assert 0.2 < changed.float().mean() < 0.3  # Bernoulli(p) over the full shape, not per channel
    assert torch.equal(noise.eval()(x), x)
    assert torch.equal(NoiseInjection(0.0)(x), x)


def test_noise_equals_the_formula_and_sigma_is_not_detached():
    x = torch.randn(2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    for std_over, shape in (("channel", (1, 3, 1, 1)), ("position", (2, 1, 5, 4))):
        noise = NoiseInjection(0.5, alpha=0.05, std_over=std_over)
        assert noise.sigma(x).shape == shape
        torch.manual_seed(1)
        y = noise(x)
        torch.manual_seed(1)
        mask, eps = torch.rand_like(x) < 0.5, torch.randn_like(x)
        dims = (0, 2, 3) if std_over == "channel" else (1,)
        sigma = x.std(dim=dims, keepdim=True)
        torch.testing.assert_close(y, x + 0.05 * mask * eps * sigma)
        (grad,) = torch.autograd.grad(y.sum(), x)
        assert not torch.allclose(grad, torch.ones_like(grad))  # gradients flow through sigma


def _inputs_of(module: nn.Module, layer: nn.Module, x: torch.Tensor) -> torch.Tensor:
    seen = []
    handle = module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    with torch.no_grad():
        layer(x)
    handle.remove()
    return seen[0]


def _zero_maps(t: torch.Tensor) -> int:
    return int((t.flatten(2).abs().amax(-1) == 0).sum())


def _scaled_copy_or_zero(t: torch.Tensor, ref: torch.Tensor, scale: float) -> bool:
    """Every (sample, channel) map of ``t`` is 0 or ``scale`` times the same map of ``ref``, and both occur."""
    zero = t.flatten(2).abs().amax(-1) == 0
    scaled = torch.isclose(t, scale * ref).flatten(2).all(-1)
    return bool((zero | scaled).all() and zero.any() and scaled.any())


@pytest.mark.parametrize("placement", ["full", "poly", "degree"])
def test_dropout_placement_in_the_graph(placement, monkeypatch):
    monkeypatch.setenv("KANSEG_KERNELS", "eager")  # the reference graph: basis_conv called on the expanded tensor
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 8, 8, 3, padding=1, dropout=0.5, dropout_placement=placement)
    assert isinstance(layer.dropout, nn.Dropout2d) and layer.dropout_placement == placement
    x = torch.randn(4, 8, 6, 6)
    base_ref, basis_ref = (_inputs_of(m, layer.eval(), x) for m in (layer.base_conv, layer.basis_conv))
    layer.train()
    base_in = _inputs_of(layer.base_conv, layer, x)  # SiLU(x) of the (dropped) input
    basis_in = _inputs_of(layer.basis_conv, layer, x)  # B(ν(x)), (B, 8·(D+1), *S)
    # full: whole input channels dropped before both branches (SiLU(0) = 0), survivors scaled by 1/(1-p) inside SiLU
    assert (_zero_maps(base_in) > 0) == (placement == "full")
    assert torch.equal(base_in, base_ref) == (placement != "full")
    # degree: single (channel, degree) maps of the basis tensor dropped, the others scaled by 2; poly and full drop
    # before the basis (a dropped channel is evaluated at t = 0: p_0 = 1, not silent), so no such pattern
    assert _scaled_copy_or_zero(basis_in, basis_ref, 2.0) == (placement == "degree")


@pytest.mark.parametrize("placement", ["full", "poly", "degree"])
@pytest.mark.parametrize("kind", ["channel", "noise"])
def test_dropout_is_identity_in_eval_and_active_in_training(placement, kind):
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, dropout=0.3, norm="batch", dropout_placement=placement,
                            dropout_kind=kind)
    plain = create_kan_conv("gram", 2, 4, 4, 3, padding=1, norm="batch")
    plain.load_state_dict(layer.state_dict())
    x = torch.randn(2, 4, 7, 5)
    torch.testing.assert_close(layer.eval()(x), plain.eval()(x))
    layer.train(), plain.train()
    torch.manual_seed(3)
    assert not torch.allclose(layer(x), plain(x))
    layer(x).square().mean().backward()  # fused or eager, gradients exist
    assert layer.base_conv.weight.grad is not None


def test_noise_kind_builds_noise_modules():
    layer = create_kan_conv("chebyshev", 3, 4, 4, 3, dropout=0.1, dropout_kind="noise", noise_std_over="position")
    assert isinstance(layer.dropout, NoiseInjection) and layer.dropout.std_over == "position"


def test_block_options_reach_every_kan_layer():
    model = create_model("unet-gram", depth=2, base_width=4, block_options={
        "dropout": 0.1, "dropout_placement": "full", "dropout_kind": "noise"})
    layers = kan_layers(model)
    assert layers and all(isinstance(m.dropout, NoiseInjection) and m.dropout_placement == "full" for m in layers)
    block = create_block("kan:gram-bottleneck", 2, 4, 8, dropout=0.2, dropout_placement="degree")
    assert all(m.dropout_placement == "degree" for m in kan_layers(block))


@pytest.mark.parametrize("options, match", [
    ({"dropout_placement": "input"}, r"unknown dropout_placement 'input'; valid: full, poly, degree"),
    ({"dropout_kind": "noisy"}, r"unknown dropout_kind 'noisy'; valid: channel, noise"),
    ({"dropout_kind": "noise", "noise_std_over": "batch"}, r"unknown noise_std_over 'batch'"),
])
def test_bad_regularisation_options_are_one_line_errors(options, match):
    with pytest.raises(KansegError, match=match) as info:
        create_model("unet-gram", depth=2, base_width=4, block_options={"dropout": 0.1, **options})
    assert "\n" not in str(info.value)


def test_weight_l1_gradient_is_sign_of_the_weights():
    model = create_model("unet-gram", depth=2, base_width=4, block_options={"norm": "batch"})
    layers = kan_layers(model)[1:]  # the study's default: every KAN conv except the first
    weight_l1(layers).backward()
    for layer in layers:
        for p in layer.parameters():
            torch.testing.assert_close(p.grad, torch.sign(p.detach()))
    assert all(p.grad is None for p in kan_layers(model)[0].parameters())


def test_activation_penalties_equal_the_hand_computed_gradient():
    torch.manual_seed(0)
    net = nn.Sequential(create_kan_conv("gram", 2, 2, 3, 3, padding=1), create_kan_conv("gram", 2, 3, 2, 1))
    x = torch.randn(4, 2, 5, 6)
    with ActivationPenalty(kan_layers(net)) as penalty:
        net(x)
        assert len(penalty.outputs) == 2
        r1, r2 = penalty.pop()
        assert penalty.outputs == []
        grads = torch.autograd.grad(r1 + 10 * r2, list(net.parameters()))
        y1 = net[0](x)
        y2 = net[1](y1)
        hand = sum(y.abs().sum(0).mean() + 10 * y.square().sum(0).sqrt().mean() for y in (y1, y2))
        expected = torch.autograd.grad(hand, list(net.parameters()))
        torch.testing.assert_close(r1, sum(y.abs().sum(0).mean() for y in (y1, y2)))
    for g, e in zip(grads, expected):
        torch.testing.assert_close(g, e)
    with torch.no_grad():  # validation collects nothing
        net(x)
    assert penalty.outputs == [] and penalty.handles == []


def test_activation_penalty_per_sample_divides_by_batch():
    layer = create_kan_conv("gram", 1, 2, 2, 3, padding=1)
    x = torch.randn(4, 2, 9)
    with ActivationPenalty([layer]) as a, ActivationPenalty([layer], per_sample=True) as b:
        layer(x)
        (r1, r2), (s1, s2) = a.pop(), b.pop()
    torch.testing.assert_close(s1, r1 / 4)
    torch.testing.assert_close(s2, r2 / 4)
