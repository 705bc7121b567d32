"""Shared set-up of the Triton kernel tests: import this module before anything from ``kanseg.kernels``.

It switches the Triton interpreter on (kernels are decorated at import, so it must come first), skips the importing
test module when triton is missing, when the kernels were already compiled for a GPU in this process, or when there is
neither a GPU nor the interpreter, and provides the eager-vs-kernel comparison both kernel stages use.
"""

import os
import sys

import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")
pytest.importorskip("triton")
if "kanseg.kernels.triton_expand" in sys.modules and os.environ.get("TRITON_INTERPRET") != "1":
    pytest.skip("Triton kernels already loaded without the interpreter", allow_module_level=True)
if os.environ.get("TRITON_INTERPRET") != "1" and not torch.cuda.is_available():
    pytest.skip("no GPU and the Triton interpreter is off", allow_module_level=True)

from kanseg import kernels  # noqa: E402

DEVICE = "cuda" if os.environ.get("TRITON_INTERPRET") != "1" else "cpu"


def branch(layer, x, backend, grad_seed=1):
    """Basis-branch output and gradients (input, every parameter); ``backend=None`` is the eager reference."""
    layer.zero_grad(set_to_none=True)
    x = x.detach().clone().requires_grad_()
    if backend is None:
        y = layer.basis_conv(layer.expand(x))
    else:
        y = kernels.basis_conv(x, layer.basis, layer.basis_conv, layer.dropout, backend=backend)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=y.dtype).to(y.device))
    return y.detach(), [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer.parameters()]


def assert_matches_eager(layer, x, backend, rtol, atol, nontrivial=False):
    """Output and every gradient of ``backend`` equal the eager layer's (and, with ``nontrivial``, are non-zero)."""
    y_ref, g_ref = branch(layer, x, None)
    y, g = branch(layer, x, backend)
    assert y.shape == y_ref.shape and y.dtype == y_ref.dtype
    torch.testing.assert_close(y, y_ref, rtol=rtol, atol=atol)
    names = ["input"] + [n for n, _ in layer.named_parameters()]
    for name, a, b in zip(names, g, g_ref):
        if nontrivial:
            assert b.abs().sum() > 0 or "base" in name, name
        torch.testing.assert_close(a, b, rtol=rtol, atol=atol, msg=lambda m: f"{name}: {m}")
