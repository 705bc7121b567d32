"""Opt-in fused KAN conv (stage 2, ``kernels.kan_conv_fused``) under ``TRITON_INTERPRET=1``: basis + base branch in
one implicit-GEMM pass equal the eager ``basis_branch(x) + base_conv(base_act(x))``, output and every gradient (input,
both conv weights, the family's parameters such as Gram's β), fp64, 2D and 3D, stride 2 / padding / groups 2.
"""

import pytest
import torch
from torch import nn

from tests.kernels.interpreter import DEVICE  # first: switches the interpreter on
from kanseg import kernels  # noqa: E402
from kanseg.kan import create_kan_conv  # noqa: E402


def _layer(family, nd, c_in, c_out, **kw):
    torch.manual_seed(0)
    return create_kan_conv(family, nd, c_in, c_out, 3, **kw).double().to(DEVICE)


def _x(nd, c, size, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(2, c, *size[:nd], generator=g, dtype=torch.float64).to(DEVICE)


def _run(layer, x, fused):
    """Both branches' output and gradients (input, then every parameter in ``named_parameters`` order)."""
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    if fused:
        y = kernels.kan_conv_fused(x, layer.basis, layer.basis_conv, layer.base_act, layer.base_conv, layer.dropout)
    else:
        y = layer.basis_conv(layer.expand(x)) + layer.base_conv(layer.base_act(x))
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype).to(y.device))
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer.parameters()]
    return y.detach(), dict(zip(names, grads))


CASES = [  # (family, nd, c_in, c_out, groups, stride, padding, size); φ: gram SiLU, jacobi identity
    ("gram", 2, 4, 6, 2, 2, 1, (9, 7)),
    ("gram", 3, 4, 4, 1, 1, 1, (5, 4, 5)),
    ("jacobi", 2, 4, 4, 1, 1, 1, (6, 7)),
    ("jacobi", 3, 4, 6, 2, 2, 1, (5, 6, 5)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}-{}d-{}to{}-g{}-s{}-p{}".format(*c[:7]))
def test_fused_layer_equals_eager_fp64(case):
    family, nd, c_in, c_out, groups, stride, padding, size = case
    layer = _layer(family, nd, c_in, c_out, stride=stride, padding=padding, groups=groups)
    assert kernels.fusable(layer.basis, layer.basis_conv, layer.base_act, layer.base_conv)
    assert isinstance(layer.base_act, nn.SiLU if family == "gram" else nn.Identity)
    x = _x(nd, c_in, size)
    y_ref, g_ref = _run(layer, x, fused=False)
    y, g = _run(layer, x, fused=True)
    assert y.shape == y_ref.shape
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-11)
    for name in ("input", "basis_conv.weight", "base_conv.weight"):
        assert g_ref[name].abs().sum() > 0, name
    if family == "gram":
        assert g_ref["basis.beta"].abs().sum() > 0
    for name, ref in g_ref.items():
        torch.testing.assert_close(g[name], ref, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")


def test_base_branch_changes_the_fused_output():
    """The fused output is not the basis branch alone: dropping the base weight changes it by the base conv."""
    layer = _layer("gram", 2, 4, 4, padding=1)
    x = _x(2, 4, (5, 6))
    with torch.no_grad():
        both = kernels.kan_conv_fused(x, layer.basis, layer.basis_conv, layer.base_act, layer.base_conv)
        basis_only = kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="implicit_gemm")
        base = layer.base_conv(layer.base_act(x))
    assert base.abs().max() > 1e-3
    torch.testing.assert_close(both - basis_only, base, rtol=1e-9, atol=1e-11)


def test_unfusable_layers_fall_back_to_separate_branches():
    """Legendre's min-max input map runs in torch (the kernel never sees x): not fusable, same result anyway."""
    layer = _layer("legendre", 2, 4, 4, padding=1)
    assert not kernels.fusable(layer.basis, layer.basis_conv, layer.base_act, layer.base_conv)
    assert not kernels.fusable(layer.basis, layer.basis_conv, nn.GELU(), layer.base_conv)
    strided = _layer("gram", 2, 4, 4, padding=1)
    strided.base_conv.stride = (2, 2)
    assert not kernels.fusable(strided.basis, strided.basis_conv, strided.base_act, strided.base_conv)
    x = _x(2, 4, (5, 6))
    y_ref, g_ref = _run(layer, x, fused=False)
    y, g = _run(layer, x, fused=True)
    torch.testing.assert_close(y, y_ref, rtol=1e-9, atol=1e-11)
    for name, ref in g_ref.items():
        torch.testing.assert_close(g[name], ref, rtol=1e-9, atol=1e-11, msg=lambda m: f"{name}: {m}")
