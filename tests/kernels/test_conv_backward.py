"""Conv gradients by forward kernels (kanseg.kernels.conv_backward) against torch's own conv backward."""

from __future__ import annotations

import itertools

import pytest
import torch

from kanseg.errors import KansegError
from kanseg.kernels.conv_backward import (
    ENV_VAR, ROUTED_CONV, ConvShape, ForwardKernelConv, choose_forward, route_mode, use_forward_route,
)

SIZES = {1: (9,), 2: (7, 6), 3: (5, 6, 7)}
GEOMETRIES = list(itertools.product([1, 2, 3], [1, 2], [0, 1, 2], [1, 2], [1, 2]))  # dims, stride, pad, dil, groups


def _case(dims, groups, dtype, kernel=3, c_in=4, c_out=6, batch=2):
    torch.manual_seed(dims * 10 + groups)
    x = torch.randn(batch, c_in, *SIZES[dims], dtype=dtype, requires_grad=True)
    w = torch.randn(c_out, c_in // groups, *([kernel] * dims), dtype=dtype, requires_grad=True)
    b = torch.randn(c_out, dtype=dtype, requires_grad=True)
    return x, w, b


def _torch_conv(x, w, b, s, p, d, g):
    n = x.dim() - 2
    return torch.ops.aten.convolution(x, w, b, [s] * n, [p] * n, [d] * n, False, [0] * n, g)


@pytest.mark.parametrize("dims,stride,pad,dil,groups", GEOMETRIES)
def test_float32_gradients_equal_torch(dims, stride, pad, dil, groups):
    x, w, b = _case(dims, groups, torch.float32)
    try:
        ref = _torch_conv(x, w, b, stride, pad, dil, groups)
    except RuntimeError:
        pytest.skip("kernel larger than the padded input")
    grad = torch.randn_like(ref)
    expected = torch.autograd.grad(ref, (x, w, b), grad)
    out = ForwardKernelConv.apply(x, w, b, (stride,) * dims, (pad,) * dims, (dil,) * dims, groups)
    assert torch.equal(out, ref)  # the forward is torch's own
    got = torch.autograd.grad(out, (x, w, b), grad)
    for e, g in zip(expected, got):
        assert g.shape == e.shape
        torch.testing.assert_close(g, e, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("dims,stride,pad,dil,groups", [(1, 2, 1, 2, 2), (2, 2, 0, 1, 1), (2, 1, 2, 2, 2),
                                                        (3, 2, 1, 1, 2), (3, 1, 1, 2, 1)])
def test_gradcheck_float64(dims, stride, pad, dil, groups):
    x, w, b = _case(dims, groups, torch.float64, c_in=2, c_out=4, batch=1, kernel=2)
    assert torch.autograd.gradcheck(
        lambda x, w, b: ForwardKernelConv.apply(x, w, b, (stride,) * dims, (pad,) * dims, (dil,) * dims, groups),
        (x, w, b))


def test_only_requested_gradients():
    x, w, _ = _case(2, 1, torch.float64)
    x = x.detach()
    y = ForwardKernelConv.apply(x, w, None, (1, 1), (1, 1), (1, 1), 1)
    (gw,) = torch.autograd.grad(y.sum(), (w,))
    ref = torch.autograd.grad(_torch_conv(x, w, None, 1, 1, 1, 1).sum(), (w,))[0]
    torch.testing.assert_close(gw, ref)
    assert x.grad is None


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_routed_conv_module_is_a_drop_in(dims, monkeypatch):
    """Same state dict, same forward; under route ``forward`` the same gradients as nn.ConvNd."""
    monkeypatch.setenv(ENV_VAR, "forward")
    torch.manual_seed(0)
    plain = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}[dims](4, 6, 3, stride=2, padding=1)
    routed = ROUTED_CONV[dims](4, 6, 3, stride=2, padding=1)
    routed.load_state_dict(plain.state_dict())
    assert isinstance(routed, type(plain)) and routed.state_dict().keys() == plain.state_dict().keys()
    x = torch.randn(2, 4, *SIZES[dims], requires_grad=True)
    y_plain, y_routed = plain(x), routed(x)
    assert torch.equal(y_plain, y_routed)
    assert y_routed.grad_fn.name().endswith("ForwardKernelConvBackward")
    g_plain = torch.autograd.grad(y_plain.square().sum(), (x, plain.weight, plain.bias))
    g_routed = torch.autograd.grad(y_routed.square().sum(), (x, routed.weight, routed.bias))
    for a, b in zip(g_plain, g_routed):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_route_modes(monkeypatch):
    x = torch.randn(1, 2, 4, 4, 4, requires_grad=True)
    w = torch.randn(2, 2, 3, 3, 3)
    monkeypatch.setenv(ENV_VAR, "torch")
    assert not use_forward_route(x, w, (1, 1, 1), 1)
    monkeypatch.setenv(ENV_VAR, "forward")
    assert use_forward_route(x, w, (1, 1, 1), 1)
    with torch.no_grad():  # inference never takes it
        assert not use_forward_route(x, w, (1, 1, 1), 1)
    assert not use_forward_route(x.detach(), w, (1, 1, 1), 1)  # nothing to differentiate
    monkeypatch.setenv(ENV_VAR, "fastest")
    with pytest.raises(KansegError, match="KANSEG_CONV_BACKWARD='fastest'.*torch, forward, auto"):
        route_mode()


def test_table_rule_takes_the_nearest_measured_row():
    rows = [dict(spatial_dims=3, in_channels=8, out_channels=8, kernel_size=[3, 3, 3], stride=[1, 1, 1], groups=1,
                 voxels=179200, speedup=3.0),
            dict(spatial_dims=3, in_channels=64, out_channels=64, kernel_size=[3, 3, 3], stride=[1, 1, 1], groups=1,
                 voxels=2800, speedup=0.9)]
    table = {"entries": rows}

    def shape(c, voxels, stride=(1, 1, 1), dims=3):
        return ConvShape(dims, c, c, (3,) * dims, stride, 1, voxels)

    assert choose_forward(shape(8, 150000), table)
    assert choose_forward(shape(12, 150000), table)
    assert not choose_forward(shape(48, 3000), table)
    assert not choose_forward(shape(8, 150000, stride=(2, 2, 2)), table)  # never measured: torch's backward
    assert not choose_forward(shape(8, 150000, stride=(1, 1), dims=2), table)
    assert not choose_forward(shape(8, 150000), {"entries": []})
