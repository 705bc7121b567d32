"""Triton expansion kernels under ``TRITON_INTERPRET=1`` on CPU: values and gradients equal the eager reference.

The interpreter must be switched on before the kernel modules are decorated, so this module sets it at import and
skips when triton is missing or the kernels were already compiled for a GPU in this process.
"""

import pytest
import torch

from tests.kernels.interpreter import DEVICE, assert_matches_eager, branch  # first: switches the interpreter on
from kanseg import kernels  # noqa: E402
from kanseg.kan import create_kan_conv  # noqa: E402
from kanseg.kernels.memory import saved_bytes  # noqa: E402
from kanseg.kernels.triton_expand import launch_backward, launch_forward  # noqa: E402
from kanseg.kernels.triton_families import get_triton_basis, triton_basis_names  # noqa: E402

FAMILIES = sorted(kernels.TRITON_FAMILIES)


def test_registry_matches_dispatch():
    assert triton_basis_names() == FAMILIES
    layer = create_kan_conv("wavelet", 2, 2, 2, 3)
    with pytest.raises(ValueError, match="valid: bernstein, chebyshev"):
        get_triton_basis(layer.basis)


def _x(nd, c=4, b=2, size=(7, 6, 5), dtype=torch.float64, seed=0):
    return torch.randn(b, c, *size[:nd], generator=torch.Generator().manual_seed(seed), dtype=dtype).to(DEVICE)






@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("nd", [2, 3])
def test_fused_equals_eager_fp64(family, nd):
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 4, 6, 3, padding=1, groups=2).double().to(DEVICE)
    assert_matches_eager(layer, _x(nd, size=(7, 5) if nd == 2 else (5, 4, 3)), "triton", rtol=1e-9, atol=1e-11)


CASES = [  # (family, nd, groups, stride, padding, dilation, size): odd sizes, stride 2, dilation 2, groups > 1
    ("gram", 2, 2, 2, 1, 1, (9, 7)),
    ("gram", 3, 1, 1, 2, 2, (7, 6, 5)),
    ("chebyshev", 3, 2, 2, 1, 1, (5, 7, 6)),
    ("legendre", 2, 1, 1, 2, 2, (11, 9)),
    ("jacobi", 3, 2, 1, 0, 1, (5, 5, 7)),
    ("bernstein", 2, 2, 2, 1, 1, (13, 5)),
    ("rbf", 3, 2, 1, 1, 1, (7, 5, 3)),
    ("relu", 2, 2, 2, 2, 2, (9, 11)),
    ("jacobi", 1, 2, 2, 1, 1, (13,)),
    ("gram", 1, 1, 1, 1, 2, (17,)),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}-{}d-g{}-s{}-p{}-d{}".format(*c[:6]))
def test_fused_equals_eager_fp32_noncontiguous(case):
    family, nd, groups, stride, padding, dilation, size = case
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 4, 6, 3, stride=stride, padding=padding, dilation=dilation,
                            groups=groups).to(DEVICE)
    wide = _x(nd, c=8, size=tuple(s + 1 for s in size), dtype=torch.float32)
    x = wide[:, ::2, 1:]                      # non-contiguous: every other channel, first row dropped
    assert not x.is_contiguous() and x.shape[1] == 4
    assert_matches_eager(layer, x, "triton", rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_expansion_kernels_direct(family):
    """Forward kernel against ``family.expand`` and backward kernel against autograd of it, on a raw flat view."""
    layer = create_kan_conv(family, 2, 3, 3, 3).double().to(DEVICE)
    spec, basis = get_triton_basis(layer.basis), layer.basis
    z = _x(2, c=3, size=(5, 9)).requires_grad_()
    t = basis.input_map(z) if spec.torch_input_map else z
    prm = spec.kernel_params(basis, z).detach().contiguous()
    out = launch_forward(spec, t.detach(), None, prm, spec.num_basis, torch.float64)
    ref = basis.expand(t if spec.torch_input_map else basis.input_map(z))
    torch.testing.assert_close(out, ref.detach(), rtol=1e-12, atol=1e-13)
    grad = torch.randn_like(ref)
    grad_t, part = launch_backward(spec, t.detach(), None, prm, spec.num_basis, grad)
    (grad_ref,) = torch.autograd.grad(ref, t, grad, retain_graph=True)
    torch.testing.assert_close(grad_t, grad_ref, rtol=1e-10, atol=1e-12)
    assert part.shape[:2] == (2, 3)


def test_parameter_gradients_are_deterministic():
    layer = create_kan_conv("relu", 2, 4, 4, 3, padding=1).to(DEVICE)
    x = _x(2, dtype=torch.float32, size=(33, 34))
    first = branch(layer, x, "triton")[1]
    second = branch(layer, x, "triton")[1]
    for a, b in zip(first, second):
        assert torch.equal(a, b)


class _TritonBranch(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return kernels.basis_conv(x, self.layer.basis, self.layer.basis_conv, backend="triton")


@pytest.mark.parametrize("family", ["gram", "relu", "legendre"])
def test_gradcheck_expand_conv_triton(family):
    layer = create_kan_conv(family, 3, 2, 2, 3, padding=1).double().to(DEVICE)
    names = [n for n, p in layer.basis.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in layer.basis.named_parameters() if p.requires_grad]
    x = _x(3, c=2, b=1, size=(3, 4, 3)).requires_grad_()

    branch = _TritonBranch(layer)

    def fn(x, *ps):
        return torch.func.functional_call(branch, {f"layer.basis.{n}": p for n, p in zip(names, ps)}, (x,),
                                          strict=False)

    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-6, fast_mode=True)


def test_dropout_scale_in_kernel():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, dropout=0.5).double().train().to(DEVICE)
    x = _x(2)
    torch.manual_seed(7)
    ref = layer.basis_conv(layer.expand(x))
    torch.manual_seed(7)
    out = kernels.basis_conv(x, layer.basis, layer.basis_conv, layer.dropout, backend="triton")
    torch.testing.assert_close(out, ref, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    """fp16 / bf16 inputs: basis math in fp32, expanded stored in the conv dtype; equals eager to that precision."""
    layer = create_kan_conv("chebyshev", 2, 4, 4, 3, padding=1).to(DEVICE).to(dtype)
    x = _x(2, dtype=dtype)
    y_ref = layer.basis_conv(layer.expand(x))
    y = kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="triton")
    assert y.dtype == dtype
    torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("family", ["gram", "relu", "rbf"])
def test_triton_path_saves_only_input_and_parameters(family):
    layer = create_kan_conv(family, 3, 4, 4, 3, padding=1).to(DEVICE)
    x = _x(3, dtype=torch.float32).requires_grad_()
    saved = saved_bytes(lambda: kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="triton"))
    expected = x.numel() * 4 + sum(p.numel() * 4 for p in (*layer.basis.parameters(), layer.basis_conv.weight))
    assert saved == expected
