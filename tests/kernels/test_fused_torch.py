"""The fused path on CPU (torch recompute expander): same values and gradients as the eager reference, memory saved
for backward, dispatch by ``KANSEG_KERNELS``."""

import pytest
import torch
from torch import nn

from kanseg import kernels
from kanseg.errors import KansegError
from kanseg.kan import create_kan_conv, list_families
from kanseg.kernels.memory import saved_bytes

FAMILIES = list_families()
CASES = [  # (family, nd, groups, stride, padding, dilation, size)
    *[(f, nd, 1, 1, 1, 1, (7, 6, 5)) for f in FAMILIES for nd in (2, 3)],
    ("gram", 2, 2, 2, 1, 1, (9, 8)),
    ("relu", 3, 2, 1, 2, 2, (7, 6, 5)),
    ("wavelet", 2, 2, 2, 0, 2, (9, 7)),
    ("gram-bottleneck", 2, 2, 1, 1, 1, (7, 6)),
    ("rbf-bottleneck", 3, 1, 2, 1, 1, (5, 6, 7)),
]


def _x(nd, c=4, b=2, size=(7, 6, 5), dtype=torch.float64, seed=0):
    return torch.randn(b, c, *size[:nd], generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _run(layer, x, mode, monkeypatch):
    """Output and gradients (input, every parameter) of one forward + backward under ``mode``."""
    monkeypatch.setenv(kernels.ENV_VAR, mode)
    layer.zero_grad(set_to_none=True)
    x = x.clone().requires_grad_()
    y = layer(x)
    y.backward(torch.randn(y.shape, generator=torch.Generator().manual_seed(1), dtype=y.dtype))
    grads = [x.grad] + [p.grad if p.grad is not None else torch.zeros_like(p) for p in layer.parameters()]
    return y.detach(), grads


@pytest.mark.parametrize("case", CASES, ids=lambda c: "{}-{}d-g{}-s{}-p{}-d{}".format(*c[:6]))
def test_fused_layer_equals_eager_fp64(case, monkeypatch):
    family, nd, groups, stride, padding, dilation, size = case
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 4, 6, 3, stride=stride, padding=padding, dilation=dilation,
                            groups=groups).double()
    x = _x(nd, size=size)
    y_ref, g_ref = _run(layer, x, "eager", monkeypatch)
    y, g = _run(layer, x, "fused", monkeypatch)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, g_ref):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_fused_first_layer_with_unused_basis_parameters(degree, monkeypatch):
    """A first layer (the image needs no gradient) whose expansion does not use a learnable basis parameter
    (Gram below degree 2 has no beta term): backward runs, and every gradient equals the eager one."""
    torch.manual_seed(0)
    layer = create_kan_conv("gram", 2, 3, 4, 3, padding=1, degree=degree).double()
    x = _x(2, c=3)
    grads = {}
    for mode in ("eager", "fused"):
        monkeypatch.setenv(kernels.ENV_VAR, mode)
        layer.zero_grad(set_to_none=True)
        layer(x).square().sum().backward()  # x does not require grad
        grads[mode] = [torch.zeros_like(p) if p.grad is None else p.grad.clone() for p in layer.parameters()]
    for a, b in zip(grads["fused"], grads["eager"]):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


@pytest.mark.parametrize("family", FAMILIES)
def test_saved_memory(family, monkeypatch):
    """Basis branch keeps <= 1.1x its input, the whole layer <= 1.1x a plain Conv + InstanceNorm + SiLU; eager keeps
    far more (so the measurement can fail)."""
    c, b, size = 16, 4, (64, 64)  # parameters are counted too: keep them small next to the input
    layer = create_kan_conv(family, 2, c, c, 3, padding=1)
    plain = nn.Sequential(nn.Conv2d(c, c, 3, padding=1, bias=False), nn.InstanceNorm2d(c), nn.SiLU())
    x = torch.randn(b, c, *size, requires_grad=True)
    x_bytes = x.numel() * x.element_size()
    plain_bytes = saved_bytes(lambda: plain(x))
    monkeypatch.setenv(kernels.ENV_VAR, "eager")
    eager_branch = saved_bytes(lambda: layer.basis_branch(x))
    monkeypatch.setenv(kernels.ENV_VAR, "auto")
    branch = saved_bytes(lambda: layer.basis_branch(x))
    whole = saved_bytes(lambda: layer(x))
    limit = 2.05 if family == "wavelet" else 1.1  # wavelet: its 1x1 mix (C_out channels) stays outside
    assert branch <= limit * x_bytes, (branch / x_bytes)
    assert eager_branch >= 2.5 * x_bytes
    # bspline's post activation (GroupPReLU, torch.where) also keeps a bool mask of the norm output: +0.25x input
    assert whole <= (1.15 if family == "bspline" else 1.1) * plain_bytes, (whole / plain_bytes)


def test_modes_and_errors(monkeypatch):
    x = torch.randn(1, 2, 4, 4)
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    assert kernels.kernel_mode() == "auto"
    assert kernels.use_fused(x)                       # CPU, gradients recorded
    with torch.no_grad():
        assert not kernels.use_fused(x)               # CPU inference: eager does the same work
    monkeypatch.setenv(kernels.ENV_VAR, "fused")
    with torch.no_grad():
        assert kernels.use_fused(x)
    monkeypatch.setenv(kernels.ENV_VAR, "EAGER")
    assert not kernels.use_fused(x)
    monkeypatch.setenv(kernels.ENV_VAR, "fast")
    with pytest.raises(KansegError, match="valid: eager, fused, auto"):
        kernels.use_fused(x)
    layer = create_kan_conv("gram", 2, 2, 2, 3)
    monkeypatch.setenv(kernels.ENV_VAR, "auto")
    with pytest.raises(ValueError, match="valid: torch, triton"):
        kernels.basis_conv(x, layer.basis, layer.basis_conv, backend="cuda")
    assert kernels.select_backend(x, "gram") == "torch"


def _graph_nodes(y: torch.Tensor) -> set[str]:
    """Names of every autograd node behind ``y``."""
    seen, stack, names = set(), [y.grad_fn], set()
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        names.add(type(node).__name__)
        stack.extend(n for n, _ in node.next_functions)
    return names


def test_layer_uses_fused_function_by_default(monkeypatch):
    monkeypatch.delenv(kernels.ENV_VAR, raising=False)
    layer = create_kan_conv("gram", 2, 2, 3, 3, padding=1, norm="none")
    y = layer.basis_branch(torch.randn(1, 2, 5, 5, requires_grad=True))
    assert any("ExpandConv" in n for n in _graph_nodes(y))
    monkeypatch.setenv(kernels.ENV_VAR, "eager")
    y = layer.basis_branch(torch.randn(1, 2, 5, 5, requires_grad=True))
    assert not any("ExpandConv" in n for n in _graph_nodes(y))


def test_eager_mode_is_the_reference_bit_for_bit(monkeypatch):
    monkeypatch.setenv(kernels.ENV_VAR, "eager")
    layer = create_kan_conv("chebyshev", 2, 3, 4, 3, padding=1)
    x = torch.randn(2, 3, 6, 5)
    expected = layer.act(layer.norm(layer.basis_conv(layer.expand(x))))
    assert torch.equal(layer(x), expected)


def test_gradcheck_expand_conv(monkeypatch):
    """``ExpandConv`` itself (torch expander) passes gradcheck, including the basis parameters."""
    monkeypatch.setenv(kernels.ENV_VAR, "fused")
    layer = create_kan_conv("relu", 2, 2, 2, 3, padding=1, stride=2).double()
    x = _x(2, c=2, b=1, size=(5, 4)).requires_grad_()
    low, high = (p.detach().clone().requires_grad_() for p in (layer.basis.phase_low, layer.basis.phase_high))
    weight = layer.basis_conv.weight.detach().clone().requires_grad_()

    def fn(x, low, high, weight):
        state = {"basis.phase_low": low, "basis.phase_high": high, "basis_conv.weight": weight}
        return torch.func.functional_call(layer, state, (x,), strict=False)

    assert torch.autograd.gradcheck(fn, (x, low, high, weight), eps=1e-6, atol=1e-6)


def test_dropout_mask_matches_eager(monkeypatch):
    """The fused path draws the same channel mask as ``DropoutNd`` on the expanded input (same RNG stream)."""
    layer = create_kan_conv("gram", 3, 4, 4, 3, padding=1, dropout=0.5).double().train()
    x = _x(3)
    outs = []
    for mode in ("eager", "fused"):
        monkeypatch.setenv(kernels.ENV_VAR, mode)
        torch.manual_seed(3)
        outs.append(layer.basis_branch(x))
    torch.testing.assert_close(outs[1], outs[0], rtol=1e-10, atol=1e-12)


def test_batchnorm_input_map_updates_running_stats_once(monkeypatch):
    """RBF with BatchNorm as ν: the recompute in backward must not update the running statistics again."""
    stats = []
    for mode in ("eager", "fused"):
        monkeypatch.setenv(kernels.ENV_VAR, mode)
        torch.manual_seed(0)
        layer = create_kan_conv("rbf", 2, 3, 3, 3, padding=1, norm="batch").train()
        layer(torch.randn(2, 3, 6, 6, generator=torch.Generator().manual_seed(0))).sum().backward()
        stats.append(torch.cat([b.float().flatten() for b in layer.buffers()]))
    torch.testing.assert_close(stats[1], stats[0])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_autocast_and_low_precision(dtype, monkeypatch):
    layer = create_kan_conv("gram", 2, 4, 4, 3, padding=1, norm="none")
    x = torch.randn(2, 4, 6, 7)
    results = {}
    for mode in ("eager", "fused"):
        monkeypatch.setenv(kernels.ENV_VAR, mode)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            results[mode, "autocast"] = layer.basis_branch(x.requires_grad_())
        results[mode, "cast"] = layer.to(dtype).basis_branch(x.to(dtype))
        layer.float()
    for kind in ("autocast", "cast"):
        ref, out = results["eager", kind], results["fused", kind]
        assert out.dtype == ref.dtype
        torch.testing.assert_close(out.float(), ref.float(), rtol=2e-2, atol=2e-2)


ANALYTIC = [  # (family, nd, groups, options): the families whose CPU fused path is the AnalyticExpander
    ("rbf", 2, 1, {}), ("rbf", 3, 2, {"norm": "batch"}), ("rbf", 1, 1, {"grid_size": 5}),
    ("relu", 2, 2, {}), ("relu", 3, 1, {"train_ab": False}), ("relu", 1, 1, {"g": 3, "k": 2}),
    *[("bspline", 2, 1, {"spline_order": k, "grid_range": (-1.5, 1.5)}) for k in (0, 1, 2, 3)],
    ("bspline", 3, 2, {}),
    *[("wavelet", nd, g, {"wavelet_type": w}) for w in ("mexican_hat", "morlet", "dog") for nd, g in ((2, 1), (3, 2))],
    ("wavelet", 1, 2, {}),
]


@pytest.mark.parametrize("case", ANALYTIC, ids=lambda c: f"{c[0]}-{c[1]}d-g{c[2]}-{'-'.join(map(str, c[3].values()))}")
def test_analytic_expander_equals_eager_fp64(case, monkeypatch):
    """The hand-written VJPs (rbf, relu, bspline, wavelet): values and every gradient equal to eager autograd, with
    non-trivial learnable parameters, in train mode (a batch-norm input map updates its statistics once)."""
    family, nd, groups, options = case
    torch.manual_seed(0)
    layer = create_kan_conv(family, nd, 4, 6, 3, padding=1, groups=groups, **options).double()
    with torch.no_grad():
        for name, p in layer.basis.named_parameters():
            if name in ("scale",):
                p.uniform_(0.5, 2.0)
            elif name in ("translation",):
                p.uniform_(-1.0, 1.0)
            elif name.startswith("phase"):
                p.add_(0.1 * torch.randn_like(p))
    from kanseg.kernels.analytic_expander import AnalyticExpander

    calls = []
    vjp = AnalyticExpander.vjp
    monkeypatch.setattr(AnalyticExpander, "vjp", lambda self, *a: calls.append(1) or vjp(self, *a))
    x = _x(nd, size=(7, 6, 5)) * 1.5
    y_ref, g_ref = _run(layer, x, "eager", monkeypatch)
    fast = []
    fast_expand = type(layer.basis).fast_expand
    monkeypatch.setattr(type(layer.basis), "fast_expand", lambda self, t: fast.append(1) or fast_expand(self, t))
    with torch.no_grad():  # auto without gradients: the in-place expansion, same values
        monkeypatch.setenv(kernels.ENV_VAR, "auto")
        torch.testing.assert_close(layer(x), y_ref, rtol=1e-10, atol=1e-12)
    assert fast
    buffers = {k: v.clone() for k, v in layer.named_buffers()}
    y, g = _run(layer, x, "fused", monkeypatch)
    assert calls  # the dispatcher chose the analytic expander
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-12)
    for a, b in zip(g, g_ref, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)
    assert any(t.abs().sum() > 0 for t in g[1:])
    for k, v in layer.named_buffers():  # running statistics: one update per forward, as eager
        if k.endswith("num_batches_tracked"):
            assert int(v) == int(buffers[k]) + 1

