"""Implicit-GEMM KAN conv (stage 2) under ``TRITON_INTERPRET=1``: values and all gradients equal the eager reference.

Gradients checked: input, conv weight and the family's parameters (Gram's β through the kernels' coefficient
partials). Cases cover 1D/2D/3D, odd sizes, stride 2, dilation 2, padding edges, groups > 1, several channel blocks.
The interpreter must be on before the kernel modules are decorated (see ``test_triton_interpret.py``).
"""

import pytest
import torch

from tests.kernels.interpreter import DEVICE, assert_matches_eager, branch  # first: switches the interpreter on
from kanseg import kernels  # noqa: E402
from kanseg.kan import create_kan_conv  # noqa: E402
from kanseg.kernels.memory import saved_bytes  # noqa: E402
from kanseg.kernels.implicit_gemm_basis import STAGE2_BASES  # noqa: E402
from kanseg.kernels.recurrences import recurrence_names  # noqa: E402



def test_stage2_families_match_kernels():
    assert set(kernels.STAGE2_FAMILIES) == set(STAGE2_BASES) | set(recurrence_names())
    assert set(kernels.STAGE2_FAMILIES) <= set(kernels.TRITON_FAMILIES)


def test_unsupported_family_lists_valid_ones():
    layer = create_kan_conv("relu", 2, 2, 2, 3).to(DEVICE)
    x = torch.randn(1, 2, 5, 5, device=DEVICE)
    with pytest.raises(ValueError, match="valid: chebyshev, gram, jacobi, legendre, rbf"):
        kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="implicit_gemm")


def _x(nd, c, size, dtype, b=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, c, *size[:nd], generator=g, dtype=dtype).to(DEVICE)






CASES = [  # (family, nd, c_in, c_out, kernel, groups, stride, padding, dilation, size)
    ("gram", 2, 4, 6, 3, 2, 2, 1, 1, (9, 7)),           # stride 2, groups, odd sizes
    ("gram", 3, 4, 4, 3, 1, 1, 2, 2, (6, 5, 5)),        # dilation 2, padding 2 (edges in every direction)
    ("chebyshev", 3, 4, 6, 3, 2, 2, 1, 1, (5, 7, 6)),
    ("legendre", 2, 4, 6, 3, 1, 1, 2, 2, (11, 9)),
    ("jacobi", 3, 4, 6, 3, 2, 1, 0, 1, (5, 5, 7)),      # no padding
    ("rbf", 2, 4, 6, 3, 2, 1, 1, 1, (7, 5)),
    ("rbf", 3, 2, 4, 3, 1, 2, 1, 2, (7, 5, 6)),         # stride 2 and dilation 2 together
    ("gram", 1, 4, 6, 3, 2, 2, 1, 1, (13,)),
    ("chebyshev", 2, 36, 72, 3, 1, 1, 1, 1, (5, 4)),    # several channel blocks (input and output)
    ("legendre", 2, 6, 3, 5, 3, 1, 2, 1, (6, 7)),       # 5×5 kernel, 3 groups of 2 → 1
    ("jacobi", 2, 4, 4, 1, 1, 2, 0, 1, (6, 5)),         # 1×1, stride 2
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}-{}d-{}to{}-k{}-g{}-s{}-p{}-d{}".format(*c[:9]))
def test_stage2_equals_eager_fp64(case):
    family, nd, c_in, c_out, k, groups, stride, padding, dilation, size = case
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, c_in, c_out, k, stride=stride, padding=padding, dilation=dilation,
                            groups=groups).double().to(DEVICE)
    assert_matches_eager(layer, _x(nd, c_in, size, torch.float64), "implicit_gemm", nontrivial=True,
                         rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("family", sorted(kernels.STAGE2_FAMILIES))
def test_stage2_equals_eager_fp32_noncontiguous(family, monkeypatch):
    """fp32 operands and fp32 ``tl.dot`` (tf32 off on a GPU, for cuDNN and the kernels alike); a non-contiguous
    input (every other channel, first row dropped)."""
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    torch.manual_seed(0)
    layer = create_kan_conv(family, 2, 4, 6, 3, stride=2, padding=1, groups=2).to(DEVICE)
    x = _x(2, 8, (10, 8), torch.float32)[:, ::2, 1:]
    assert not x.is_contiguous()
    assert_matches_eager(layer, x, "implicit_gemm", nontrivial=True, rtol=2e-4, atol=2e-5)


def test_dropout_scale_in_stage2():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, dropout=0.5).double().train().to(DEVICE)
    x = _x(2, 4, (6, 5), torch.float64)
    torch.manual_seed(7)
    y_ref, g_ref = branch(layer, x, None)
    torch.manual_seed(7)
    y, g = branch(layer, x, "implicit_gemm")
    assert (y_ref == 0).sum() < y_ref.numel()
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_stage2_is_deterministic():
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1).to(DEVICE)
    x = _x(2, 4, (17, 18), torch.float32)
    first, second = branch(layer, x, "implicit_gemm"), branch(layer, x, "implicit_gemm")
    assert torch.equal(first[0], second[0])
    for a, b in zip(first[1], second[1]):
        assert torch.equal(a, b)


@pytest.mark.parametrize("family", ["gram", "rbf"])
def test_stage2_saves_only_input_and_parameters(family):
    layer = create_kan_conv(family, 3, 4, 4, 3, padding=1).to(DEVICE)
    x = _x(3, 4, (5, 4, 3), torch.float32).requires_grad_()
    saved = saved_bytes(lambda: kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="implicit_gemm"))
    expected = x.numel() * 4 + sum(p.numel() * 4 for p in (*layer.basis.parameters(), layer.basis_conv.weight))
    assert saved == expected


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_operands(dtype):
    """fp16 / bf16 layers: basis math in fp32, operands in the conv dtype, fp32 accumulation; output in that dtype.
    The interpreter's bf16 ``tl.dot`` gives wrong results (triton 3.8): bf16 values are compared on a GPU only."""
    layer = create_kan_conv("chebyshev", 2, 4, 4, 3, padding=1).to(DEVICE).to(dtype)
    x = _x(2, 4, (6, 5), dtype)
    y_ref = layer.basis_conv(layer.expand(x))
    y = kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="implicit_gemm")
    assert y.dtype == dtype and y.shape == y_ref.shape
    if dtype == torch.float16 or DEVICE == "cuda":
        torch.testing.assert_close(y.float(), y_ref.float(), rtol=2e-2, atol=2e-2)


@pytest.mark.parametrize("family", ["gram", "legendre"])
def test_gradcheck_stage2(family):
    layer = create_kan_conv(family, 2, 2, 2, 3, padding=1, stride=2).double().to(DEVICE)
    names = [n for n, p in layer.basis.named_parameters() if p.requires_grad]
    params = [p.detach().clone().requires_grad_() for n, p in layer.basis.named_parameters() if p.requires_grad]
    weight = layer.basis_conv.weight.detach().clone().requires_grad_()
    x = _x(2, 2, (5, 4), torch.float64, b=1).requires_grad_()

    def fn(x, weight, *ps):
        swap = {f"basis.{n}": p for n, p in zip(names, ps)}
        swap["basis_conv.weight"] = weight
        return torch.func.functional_call(_Stage2Branch(layer), {f"layer.{k}": v for k, v in swap.items()}, (x,),
                                          strict=False)

    assert torch.autograd.gradcheck(fn, (x, weight, *params), eps=1e-6, atol=1e-6, fast_mode=True)


class _Stage2Branch(torch.nn.Module):
    def __init__(self, layer):
        super().__init__()
        self.layer = layer

    def forward(self, x):
        return kernels.basis_conv(x, self.layer.basis, self.layer.basis_conv, backend="implicit_gemm")


def test_weight_gradient_split_k_equals_one_pass():
    """The weight gradient's split-K slices (used to fill a GPU) sum to the single-pass reduction."""
    from kanseg.kernels.implicit_gemm import ImplicitGemmPlan, conv_weight_grad
    from kanseg.kernels.triton_expander import TritonExpander

    layer = create_kan_conv("legendre", 2, 4, 6, 3, padding=1, groups=2).double().to(DEVICE)
    x = _x(2, 4, (9, 8), torch.float64)
    names = [n for n, _ in layer.basis.named_parameters()]
    plan = ImplicitGemmPlan(TritonExpander(layer.basis, names, x.dtype),
                            kernels.ConvGeometry.of(layer.basis_conv), x.dtype)
    t, prm = plan.expander.kernel_inputs(layer.basis, x, None)
    weight = layer.basis_conv.weight.detach()
    grad_y = _x(2, 6, (9, 8), torch.float64, seed=3)
    one = conv_weight_grad(plan, t, weight, None, prm, grad_y, split=1)
    expanded = layer.expand(x).detach()
    ref = torch.nn.grad.conv2d_weight(expanded, weight.shape, grad_y, padding=1, groups=2)
    torch.testing.assert_close(one, ref, rtol=1e-10, atol=1e-12)
    for split in (2, 3):  # 144 output voxels: slices of 128 + 16 and 64 + 64 + 16
        torch.testing.assert_close(conv_weight_grad(plan, t, weight, None, prm, grad_y, split=split), one,
                                   rtol=1e-12, atol=1e-13)
