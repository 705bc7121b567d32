"""KAN mixers (spec section 1): shapes, gradcheck, group isolation, attention at init, permutation equivariance,
parameter counts of the reference, one-line errors."""

import pytest
import torch
import torch.nn.functional as F

from kanseg.kan.mixers import KANFocalModulation, KANSelfAttention, create_mixer, list_mixers

FAMILIES = ["gram", "chebyshev", "legendre", "jacobi", "gram-bottleneck"]
SIZES = {1: (9,), 2: (7, 5), 3: (3, 5, 4)}


def n_params(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", list_mixers())
@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_shape_and_backward_odd_sizes(name, family, nd):
    torch.manual_seed(0)
    mixer = create_mixer(name, nd, 8, family=family, degree=2)
    x = torch.randn(2, 8, *SIZES[nd], requires_grad=True)
    y = mixer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None for p in mixer.parameters())


@pytest.mark.parametrize("name", list_mixers())
@pytest.mark.parametrize("family", FAMILIES)
def test_gradcheck_float64(name, family):
    torch.manual_seed(0)
    mixer = create_mixer(name, 2, 4, family=family, degree=2).double()
    if name == "kan-attention":
        with torch.no_grad():
            mixer.gamma.fill_(0.7)  # gamma = 0 at init would hide the attention branch
    x = torch.randn(2, 4, 3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(mixer, (x,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES[:4])
@pytest.mark.parametrize("nd", [1, 2, 3])
def test_focal_layers_keep_channels_separate(family, nd):
    # Bug M3 fixed: output channel c of a depthwise focal layer depends on input channel c only.
    mixer = create_mixer("kan-focal", nd, 6, family=family)
    for layer in mixer.focal_layers:
        x = torch.randn(2, 6, *SIZES[nd], requires_grad=True)
        y = layer(x)
        weights = torch.randn_like(y)  # a plain sum of a BatchNorm output has zero gradient
        jac_rows = []
        for c in range(6):
            (grad,) = torch.autograd.grad((y[:, c] * weights[:, c]).sum(), x, retain_graph=True)
            jac_rows.append(grad.abs().sum(dim=(0, *range(2, nd + 2))))
        jac = torch.stack(jac_rows)  # (out channel, in channel)
        assert (jac.diagonal() > 0).all()
        assert torch.count_nonzero(jac - torch.diag(jac.diagonal())) == 0


def test_focal_layer_sees_every_degree_of_its_channel():
    # The reference feeds channel 0 only p_0 (a constant): here every output gets all D+1 basis maps of its input.
    layer = create_mixer("kan-focal", 2, 8, degree=3).focal_layers[0]
    assert tuple(layer.basis_conv.weight.shape[:2]) == (8, 4)  # (C, D+1): one channel's D+1 degrees each


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_projections_keep_groups_separate(family):
    mixer = create_mixer("kan-attention", 2, 8, family=family, groups=2, norm="instance")
    x = torch.randn(1, 8, 5, 5, requires_grad=True)
    y = mixer.query(x)
    (grad,) = torch.autograd.grad((y[:, :4] * torch.randn_like(y[:, :4])).sum(), x)
    assert grad[:, :4].abs().sum() > 0 and grad[:, 4:].abs().sum() == 0


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_attention_is_norm_of_input_at_init(nd):
    mixer = create_mixer("kan-attention", nd, 4, inner_channels=2)
    x = torch.randn(2, 4, *SIZES[nd])
    torch.testing.assert_close(mixer(x), F.batch_norm(x, None, None, training=True))


def test_reference_residual_drops_the_input_at_init():
    torch.manual_seed(0)
    mixer = create_mixer("kan-attention", 2, 4, residual="reference")
    x = torch.randn(2, 4, 5, 5)
    a, b = mixer(x), mixer(x + 1.0)  # gamma = 0: y = Norm(att), att does not see the shift through gamma * x
    assert not torch.allclose(a, F.batch_norm(x, None, None, training=True))
    assert torch.isfinite(a).all() and torch.isfinite(b).all()


def test_attention_matches_an_explicit_sagan():
    torch.manual_seed(0)
    mixer = create_mixer("kan-attention", 1, 3, kernel_size=1, degree=1).eval()
    with torch.no_grad():
        mixer.gamma.fill_(0.5)
    x = torch.randn(2, 3, 6)
    q, k, v = mixer.query(x), mixer.key(x), mixer.value(x)
    att = torch.einsum("bcj,bij->bci", v, torch.einsum("bci,bcj->bij", q, k).softmax(-1))
    torch.testing.assert_close(mixer(x), mixer.norm(x + 0.5 * att))


def test_attention_with_kernel_1_is_permutation_equivariant():
    torch.manual_seed(0)
    mixer = create_mixer("kan-attention", 2, 4, kernel_size=1, inner_channels=4).eval()
    with torch.no_grad():
        mixer.gamma.fill_(1.0)
    x = torch.randn(2, 4, 5, 3)
    perm = torch.randperm(15)
    permuted = x.flatten(2)[..., perm].view_as(x)
    torch.testing.assert_close(mixer(permuted), mixer(x).flatten(2)[..., perm].view_as(x))


@pytest.mark.parametrize("name, nd, options, expected", [
    # reference counts (spec section 1.1/1.2, measured by running torch-conv-kan), C = 64
    ("kan-attention", 2, {}, 553_485),
    ("kan-attention", 2, {"inner_channels": 16}, 36_925),
    ("kan-attention", 2, {"family": "gram-bottleneck"}, 144_909),
    ("kan-attention", 1, {}, 184_845),
    ("kan-attention", 3, {}, 1_659_405),
    ("kan-focal", 2, {}, 94_682),
    ("kan-focal", 2, {"full_kan": False}, 44_559),
    ("kan-focal", 2, {"family": "gram-bottleneck"}, 44_858),
    ("kan-focal", 1, {}, 86_362),
    ("kan-focal", 3, {}, 132_442),
])
def test_parameter_counts_match_the_reference(name, nd, options, expected):
    assert n_params(create_mixer(name, nd, 64, **options)) == expected


def test_parameter_count_by_hand():
    c, d, k = 8, 2, 3
    kan = (d + 2) * c * c * k * k + (d + 1) + 2 * c  # gram KAN(c->c, k): base + basis + beta + BN affine
    assert n_params(create_mixer("kan-attention", 2, c, degree=d)) == 3 * kan + 1 + 2 * c
    focal_level = c * k * k * (d + 2) + (d + 1) + 2 * c  # depthwise: C·k²·(D+2) + (D+1) + 2C
    assert n_params(create_mixer("kan-focal", 2, c, degree=d, focal_level=1, full_kan=False)) == (
        (c * (2 * c + 2) + 2 * c + 2) + (c * c + c) + focal_level + 2 * c + ((d + 2) * c * c + d + 1 + 2 * c))


def test_classes_exported_by_name():
    assert type(create_mixer("kan-attention", 2, 4)) is KANSelfAttention
    assert type(create_mixer("kan-focal", 2, 4)) is KANFocalModulation


@pytest.mark.parametrize("name, options, match", [
    ("kan-attention", {"kernel_size": 4}, r"kernel_size must be an odd"),
    ("kan-attention", {"stride": 2}, r"needs stride 1"),
    ("kan-attention", {"residual": "gamma"}, r"unknown residual 'gamma'; valid: sagan, reference"),
    ("kan-attention", {"inner_channels": 6, "groups": 4}, r"divisible by groups"),
    ("kan-attention", {"family": "nope"}, r"nope"),
    ("kan-focal", {"focal_factor": 1}, r"focal kernel size"),
    ("kan-focal", {"focal_level": 0}, r"focal_level must be"),
    ("attention", {}, r"unknown mixer 'attention'; valid: kan-attention, kan-focal"),
])
def test_bad_options_are_one_line_errors(name, options, match):
    with pytest.raises(ValueError, match=match) as info:
        create_mixer(name, 2, 8, **options)
    assert "\n" not in str(info.value)


def test_too_many_positions_is_a_clear_error():
    mixer = create_mixer("kan-attention", 2, 2, max_positions=20)
    with pytest.raises(ValueError, match=r"25 positions exceeds max_positions 20"):
        mixer(torch.randn(2, 2, 5, 5))


@pytest.mark.parametrize("name", list_mixers())
def test_bf16_autocast_is_finite_and_attention_accumulates_in_fp32(name):
    torch.manual_seed(0)
    mixer = create_mixer(name, 2, 4)
    if name == "kan-attention":
        with torch.no_grad():
            mixer.gamma.fill_(1.0)
    x = torch.randn(2, 4, 6, 5) * 100
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = mixer(x)
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("family", ["relu", "bspline", "rbf", "bernstein", "wavelet"])
def test_other_families_work_too(family):
    for name in list_mixers():
        mixer = create_mixer(name, 2, 4, family=family)
        assert mixer(torch.randn(2, 4, 5, 5)).shape == (2, 4, 5, 5)
