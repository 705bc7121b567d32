"""PEFTKANConv: identity at wrap time, fused == PEFT (spec section 2.3), an independent check of the math, gradients,
the fused-kernel path, gradcheck, bad options."""

import pytest
import torch
import torch.nn.functional as F

from kanseg import kernels
from kanseg.errors import KansegError
from kanseg.kan import KANConv, create_kan_conv
from kanseg.kan.peft import PEFTKANConv

NEW = ("extra_weight", "delta_weight", "extra_coefficients", "delta_coefficients")
SIZES = {1: (7,), 2: (5, 6), 3: (3, 4, 5)}


def _x(nd, c=4, b=2, dtype=torch.float32, seed=0):
    return torch.randn(b, c, *SIZES[nd], generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _trained(family, nd, groups=1, norm="batch", c_in=4, c_out=8, seed=0, **options):
    """A 'trained' layer: random weights, random Gram coefficients, random BatchNorm statistics, eval mode."""
    torch.manual_seed(seed)
    layer = create_kan_conv(family, nd, c_in, c_out, 3, padding=1, groups=groups, norm=norm, **options)
    with torch.no_grad():
        if hasattr(layer.basis, "beta"):
            layer.basis.beta.normal_(0, 0.05)
        if norm == "batch":
            layer.norm.running_mean.normal_(0, 0.3)
            layer.norm.running_var.uniform_(0.5, 2.0)
            layer.norm.weight.normal_(1, 0.2)
            layer.norm.bias.normal_(0, 0.2)
    return layer.eval()


def _randomise_new(peft, seed=1):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name in NEW:
            p = getattr(peft, name)
            if p is not None:
                scale = 0.05 if name.endswith("coefficients") else 0.2
                p.copy_(scale * torch.randn(p.shape, generator=g, dtype=p.dtype))


def _max_err(a, b):
    return (a - b).abs().max().item()


# --- identity at wrap time and fuse equality: the spec's case table --------------------------------------------------
TABLE = [(nd, g, e, t) for nd in (1, 2, 3) for g in (1, 4) for e in (0, 1, 3) for t in ((), (2,), (3,), (2, 3))]


@pytest.mark.parametrize("nd, groups, extra, trainable", TABLE,
                         ids=lambda c: str(c).replace(" ", "").replace("(", "T").replace(")", "").replace(",", "_"))
def test_gram_identity_and_fuse_equality(nd, groups, extra, trainable):
    norm = "batch" if groups == 4 else None  # BatchNorm (eval, random statistics) and the default InstanceNorm
    layer = _trained("gram", nd, groups, norm=norm, seed=nd * 10 + groups + extra)
    x = _x(nd)
    with torch.no_grad():
        y_plain = layer(x)
        peft = PEFTKANConv(layer, extra_degrees=extra, trainable_degrees=trainable,
                           finetune_base=extra == 0 and not trainable).eval()
        y_init = peft(x)
        assert _max_err(y_init, y_plain) <= 1e-6 * y_plain.abs().max().item()

        _randomise_new(peft)
        y_peft = peft(x)
        fused = peft.fuse()
        assert type(fused) is KANConv and fused.basis.degree == 3 + extra and not fused.training
        y_fused = fused(x)
    assert _max_err(y_fused, y_peft) <= 1e-5 * (1 + y_peft.abs().max().item())
    if extra or trainable:
        assert _max_err(y_peft, y_plain) > 1e-3  # the new tensors do something
    assert torch.equal(peft(x), y_peft)  # fuse leaves the wrapper untouched


FAMILY_CASES = [  # (family, nd, groups, extra, trainable)
    ("chebyshev", 2, 1, 1, ()),
    ("chebyshev", 3, 4, 3, (0, 3)),
    ("legendre", 1, 4, 1, (1,)),
    ("legendre", 2, 1, 3, ()),
    ("jacobi", 2, 4, 0, (2, 3)),
    ("jacobi", 3, 1, 1, ()),
    ("gram-bottleneck", 2, 1, 1, (3,)),
    ("gram-bottleneck", 3, 4, 3, (2, 3)),
    ("chebyshev-bottleneck", 2, 4, 1, ()),
    ("legendre-bottleneck", 1, 1, 3, (0,)),
    ("jacobi-bottleneck", 2, 1, 1, (3,)),
]


@pytest.mark.parametrize("family, nd, groups, extra, trainable", FAMILY_CASES, ids=lambda c: str(c))
def test_other_families_identity_and_fuse_equality(family, nd, groups, extra, trainable):
    layer = _trained(family, nd, groups, c_in=8, c_out=8)
    x = _x(nd, c=8)
    with torch.no_grad():
        y_plain = layer(x)
        peft = PEFTKANConv(layer, extra_degrees=extra, trainable_degrees=trainable).eval()
        assert _max_err(peft(x), y_plain) <= 1e-6 * y_plain.abs().max().item()
        _randomise_new(peft)
        y_peft = peft(x)
        y_fused = peft.fuse()(x)
    assert _max_err(y_fused, y_peft) <= 1e-5 * (1 + y_peft.abs().max().item())
    assert _max_err(y_peft, y_plain) > 1e-3


# --- the math, computed independently (catches a forward and a fuse that share the reference's index bugs) ----------
def test_gram_peft_matches_the_spec_formula():
    d, extra, trainable, groups = 3, 2, (2, 3), 2
    layer = _trained("gram", 2, groups, norm="batch")
    peft = PEFTKANConv(layer, extra_degrees=extra, trainable_degrees=trainable).eval()
    _randomise_new(peft)
    x = _x(2)
    w, eps, delta = layer.basis.beta.detach(), peft.extra_coefficients.detach(), peft.delta_coefficients.detach()
    w_hat = {n: w[n].item() for n in range(d)}                     # ŵ_n = w_n + δ_{n+1} for n+1 ∈ T
    for i, deg in enumerate(trainable):
        w_hat[deg - 1] += delta[i].item()
    for j in range(extra):                                          # ŵ_{D+j} = ε_j
        w_hat[d + j] = eps[j].item()

    t = torch.tanh(x)
    p = [torch.ones_like(t), t]
    for m in range(2, d + extra + 1):
        n = m - 1
        beta = w_hat[n] * (m + n) * (m - n) * n**2 * (4 * n**2 - 1) / m**2
        p.append(t * p[-1] - beta * p[-2])
    weight = layer.basis_conv.weight.detach()                       # (C_out, I·(D+1), 3, 3), channel-major
    y = layer.base_conv(F.silu(x))
    for n in range(d + 1):
        w_n = weight[:, n::d + 1]
        if n in trainable:
            w_n = w_n + peft.delta_weight.detach()[:, :, trainable.index(n)]
        y = y + F.conv2d(F.silu(p[n]), w_n, padding=1, groups=groups)
    for j in range(extra):
        y = y + F.conv2d(F.silu(p[d + 1 + j]), peft.extra_weight.detach()[:, :, j], padding=1, groups=groups)
    expected = F.silu(layer.norm(y))
    with torch.no_grad():
        got = peft(x)
        fused = peft.fuse()
    assert _max_err(got, expected) <= 1e-5 * (1 + expected.abs().max().item())
    assert torch.equal(fused.basis.beta[:d + extra], torch.tensor([w_hat[n] for n in range(d + extra)]))
    assert fused.basis.beta[d + extra] == 0  # never used


# --- gradients --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, finetune_base, freeze_norm", [
    ("gram", False, False), ("gram", True, True), ("gram-bottleneck", True, False), ("legendre", False, True)])
def test_gradients_reach_only_the_new_parameters(family, finetune_base, freeze_norm):
    layer = _trained(family, 2, 2, c_in=4, c_out=4)
    peft = PEFTKANConv(layer, extra_degrees=1, trainable_degrees=(3,), finetune_base=finetune_base,
                       freeze_norm=freeze_norm).train()
    assert peft.conv.norm.training is not freeze_norm  # a frozen norm keeps its statistics
    _randomise_new(peft)
    peft(_x(2)).square().mean().backward()
    expected = {n for n in NEW if getattr(peft, n) is not None}
    if finetune_base:
        expected |= {"conv.base_conv.weight"}
    if not freeze_norm:
        expected |= {"conv.norm.weight", "conv.norm.bias"}
    got = {n for n, p in peft.named_parameters() if p.grad is not None}
    assert got == expected == {n for n, p in peft.named_parameters() if p.requires_grad}
    assert all(peft.get_parameter(n).grad.abs().sum() > 0 for n in expected)


def test_trainable_count_follows_the_spec():
    layer = _trained("gram", 2, 4, c_in=8, c_out=8, norm=None)  # G 4, I 2, O 2, k 3, InstanceNorm without affine
    peft = PEFTKANConv(layer, extra_degrees=2, trainable_degrees=(2,))
    trainable = sum(p.numel() for p in peft.parameters() if p.requires_grad)
    assert trainable == (2 + 1) * 4 * 2 * 2 * 9 + 2 + 1
    assert not any(n.startswith("delta_index") for n, _ in peft.named_parameters())  # a buffer (reference bug P6)


def test_gradcheck_float64():
    layer = _trained("gram", 2, 2, c_in=2, c_out=2, norm=None).double()
    peft = PEFTKANConv(layer, extra_degrees=1, trainable_degrees=(2,)).double()
    _randomise_new(peft)
    names = [n for n in NEW if getattr(peft, n) is not None]
    x = _x(2, c=2, b=1, dtype=torch.float64)[..., :4, :4].requires_grad_()

    def fn(x, *params):
        return torch.func.functional_call(peft, dict(zip(names, params)), (x,))

    params = [getattr(peft, n).detach().clone().requires_grad_() for n in names]
    assert torch.autograd.gradcheck(fn, (x, *params), eps=1e-6, atol=1e-5)


# --- the fused-kernel path (torch recompute on CPU) gives the eager values and gradients ----------------------------
@pytest.mark.parametrize("family, groups", [("gram", 2), ("chebyshev", 1), ("gram-bottleneck", 1)])
def test_fused_kernel_path_equals_eager(family, groups, monkeypatch):
    layer = _trained(family, 2, groups, c_in=4, c_out=4).double()
    peft = PEFTKANConv(layer, extra_degrees=1, trainable_degrees=(3,), finetune_base=True).train()
    _randomise_new(peft)
    x = _x(2, dtype=torch.float64)
    results = []
    for mode in ("eager", "fused"):
        monkeypatch.setenv(kernels.ENV_VAR, mode)
        peft.zero_grad(set_to_none=True)
        xr = x.clone().requires_grad_()
        y = peft(xr)
        y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(2), dtype=y.dtype))
        results.append([y.detach(), xr.grad] + [p.grad for p in peft.parameters() if p.requires_grad])
    for eager, fused in zip(*results):
        assert _max_err(eager, fused) <= 1e-10 * (1 + eager.abs().max().item())


# --- bad options ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("family, options, message", [
    ("gram", {"trainable_degrees": (1,)}, r"trainable_degrees \[1\] outside the valid range 2..3"),
    ("gram", {"trainable_degrees": (4,)}, r"outside the valid range 2..3"),
    ("chebyshev", {"trainable_degrees": (-1, 2)}, r"\[-1\] outside the valid range 0..3"),
    ("gram", {"trainable_degrees": (2, 2)}, "distinct"),
    ("gram", {"extra_degrees": -1}, "extra_degrees must be an integer >= 0"),
    ("gram", {"extra_degrees": 0}, "nothing to train"),
    ("chebyshev", {"extra_degrees": 0, "finetune_base": True}, "nothing to train"),  # no base branch
    ("rbf", {}, "family 'rbf' is not a three-term recurrence"),
    ("bernstein", {}, "family 'bernstein' is not a three-term recurrence"),
])
def test_bad_options_raise_one_line(family, options, message):
    layer = create_kan_conv(family, 2, 4, 4, 3)
    with pytest.raises(KansegError, match=message) as err:
        PEFTKANConv(layer, **options)
    assert "\n" not in str(err.value)
