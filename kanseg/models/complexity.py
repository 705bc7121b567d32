"""Parameters and FLOPs of a model at a stated input size, without running real arithmetic.

The forward pass runs on fake tensors (shapes only, so a 96^3 volume costs nothing) under a
:class:`~torch.utils._python_dispatch.TorchDispatchMode` that counts, op by op:

* ``conv_macs``: multiply-accumulates of every convolution (and matrix product), from its shapes — functional convolutions included,
  which is where KAN layers put their basis weights (``(B, C_in*P, *S)`` basis tensor convolved to ``C_out``);
* ``kan_ops``: elementwise ops executed inside KAN layers (:func:`kanseg.kan.is_kan_layer`: input map, basis
  recurrence, base activation, norm, post activation) — the KAN basis work;
* ``other_ops``: elementwise ops elsewhere (norms and activations of ``conv`` blocks, pooling, upsampling,
  attention gates, skips).

Counting rule for elementwise work: a pointwise op costs one op per output element; a normalisation costs
4 ops per element (mean, variance, subtract, scale); pooling and interpolation cost one op per input element
read (``2^N`` per output element). ``flops = 2 * conv_macs + kan_ops + other_ops``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensorMode
from torch.utils._python_dispatch import TorchDispatchMode

from kanseg.kan import is_kan_layer

_NORM_OPS = {"native_batch_norm", "_native_batch_norm_legit", "_native_batch_norm_legit_no_training",
             "native_group_norm", "native_layer_norm"}
_WINDOW_OPS = {"max_pool1d", "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d",
               "avg_pool3d", "upsample_linear1d", "upsample_bilinear2d", "upsample_trilinear3d",
               "upsample_nearest1d", "upsample_nearest2d", "upsample_nearest3d"}


@dataclass(frozen=True)
class Complexity:
    """Cost of one forward pass of one input of ``input_shape`` ``(C, *S)``."""

    params: int
    input_shape: tuple[int, ...]
    conv_macs: int
    kan_ops: int
    other_ops: int

    @property
    def flops(self) -> int:
        """``2 * conv_macs + kan_ops + other_ops``."""
        return 2 * self.conv_macs + self.kan_ops + self.other_ops


def count_parameters(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (buffers such as BatchNorm running stats excluded)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def _numel(t) -> int:
    return t.numel() if isinstance(t, torch.Tensor) else 0


class _OpCounter(TorchDispatchMode):
    """Counts conv MACs and elementwise ops; ``in_kan`` > 0 while a KAN layer runs."""

    def __init__(self):
        super().__init__()
        self.conv_macs = 0
        self.kan_ops = 0
        self.other_ops = 0
        self.in_kan = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        first = out[0] if isinstance(out, (tuple, list)) else out
        if name == "convolution":
            x, weight, transposed = args[0], args[1], args[6]
            per_out = weight.shape[1] * math.prod(weight.shape[2:])  # (C_in / groups) * k^N
            self.conv_macs += (_numel(x) * weight.shape[1] * math.prod(weight.shape[2:]) if transposed
                               else _numel(first) * per_out)
            ops = _numel(first) if args[2] is not None else 0  # bias add
        elif name in ("mm", "addmm", "bmm", "baddbmm"):
            self.conv_macs += _numel(first) * args[-1].shape[-2]  # (.., n, m) output, k = rows of the last
            ops = 0
        elif name in _NORM_OPS:
            ops = 4 * _numel(args[0])
        elif name in _WINDOW_OPS:
            ops = max(_numel(args[0]), _numel(first))
        elif torch.Tag.pointwise in func.tags:
            ops = _numel(first)
        else:
            ops = 0  # views, copies, concatenation, padding
        if self.in_kan:
            self.kan_ops += ops
        else:
            self.other_ops += ops
        return out


def measure_complexity(model: nn.Module, input_shape: Sequence[int]) -> Complexity:
    """Parameters and per-image FLOPs of ``model`` for one input of shape ``(C, *S)`` (eval mode).

    Weights and activations are fake tensors (shapes only): nothing is computed and no activation memory is
    allocated; ``model`` is left as it was (its train/eval mode included).
    """
    counter = _OpCounter()
    handles = []
    for module in model.modules():
        if is_kan_layer(module):
            handles.append(module.register_forward_pre_hook(lambda *_: _shift(counter, 1)))
            handles.append(module.register_forward_hook(lambda *_: _shift(counter, -1)))
    was_training = model.training
    model.eval()
    try:
        with FakeTensorMode(allow_non_fake_inputs=True) as fake:  # plain tensor attributes become fake too
            tensors = {**dict(model.named_parameters()), **dict(model.named_buffers())}
            state = {k: fake.from_tensor(v) for k, v in tensors.items()}
            x = torch.empty(1, *input_shape)
            with torch.no_grad(), counter:
                torch.func.functional_call(model, state, (x,))
    finally:
        model.train(was_training)
        for handle in handles:
            handle.remove()
    return Complexity(count_parameters(model), tuple(input_shape), counter.conv_macs, counter.kan_ops,
                      counter.other_ops)


def _shift(counter: _OpCounter, step: int) -> None:
    counter.in_kan += step
