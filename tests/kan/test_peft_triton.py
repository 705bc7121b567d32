"""The Triton expansion kernels (interpreter on CPU, real kernels on a GPU) on a PEFT layer's fused tensors: values and
gradients of the new parameters equal the eager path. One tiny case: the interpreter is slow."""

import sys

import torch

from kanseg import kernels
from kanseg.kan import create_kan_conv
from kanseg.kan.peft import PEFTKANConv
from kanseg.kernels.expand_conv import call_with
from tests.kernels.interpreter import DEVICE  # first: switches the Triton interpreter on


def _branch(view, x, backend):
    if backend is None:
        return view.basis_conv(view.expand(x))
    return kernels.basis_conv(x, view.basis, view.basis_conv, None, backend=backend)


def test_triton_backend_on_peft_layer():
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 2, 2, 3, padding=1).double().to(DEVICE)
    peft = PEFTKANConv(layer, extra_degrees=1, trainable_degrees=(2,))
    with torch.no_grad():
        for p in (peft.extra_weight, peft.delta_weight):
            p.normal_(0, 0.2)
        for p in (peft.extra_coefficients, peft.delta_coefficients):
            p.normal_(0, 0.05)
    x = torch.randn(1, 2, 4, 5, dtype=torch.float64, device=DEVICE)
    new = [peft.extra_weight, peft.delta_weight, peft.extra_coefficients, peft.delta_coefficients]
    results = []
    for backend in (None, "triton"):
        xr = x.clone().requires_grad_()
        tensors = peft.fused_tensors()
        y = call_with(peft._view, lambda view, z, backend=backend: _branch(view, z, backend), list(tensors),
                      list(tensors.values()), xr)
        grads = torch.autograd.grad(y, [xr, *new], torch.ones_like(y))
        results.append([y.detach(), *grads])
    assert "kanseg.kernels.triton_expand" in sys.modules  # the Triton kernels ran
    for eager, triton in zip(*results):
        assert eager.abs().sum() > 0
        torch.testing.assert_close(triton, eager, rtol=1e-9, atol=1e-9)
