"""The analytic torch expander of :class:`~kanseg.kernels.expand_conv.ExpandConv`, for CPU (and CUDA without Triton).

A family that sets ``analytic_vjp = True`` gives three torch methods (see ``kanseg.kan.basis.spline``):

- ``fast_expand(t)``: the expanded tensor ``(B, C·P, *S)`` without autograd, built with in-place ops;
- ``expand_cached(t)``: the same plus the intermediates its derivative needs;
- ``expand_vjp(t, cache, grad)``: ``(dL/dt, {parameter name: dL/dparameter})`` by the hand-derived formula.

Compared with :class:`~kanseg.kernels.expand_conv.TorchExpander` (recompute under autograd, differentiate through
the op graph) the forward allocates one tensor instead of one per op and the backward takes a few fused passes
instead of one per op, so the memory-saving path costs no more than eager autograd. The input map ν (RBF's norm)
stays in torch under autograd: it is cheap (C channels, not C·P) and may hold parameters and running statistics.
"""

from __future__ import annotations

import torch

from kanseg.kernels.expand_conv import call_with


def _input_map(family, z, scale):
    return family.input_map(z if z.dtype == torch.float64 else z.float())


class AnalyticExpander:
    """Expansion ``(B, C, *S) -> (B, C·P, *S)`` of ``family`` (``analytic_vjp``) with its hand-written VJP.

    ``names``: the family's parameters, in the order :class:`ExpandConv` receives them.
    """

    def __init__(self, family: torch.nn.Module, names: list[str]):
        self.family, self.names = family, names

    def forward(self, z, scale, params):
        t = _input_map(self.family, z, scale)
        return self.family.fast_expand(t if scale is None else t * scale)

    def recompute(self, z, scale, params, need_z: bool, need_params: list[bool]):
        z_ = z.detach().requires_grad_(need_z)
        ps = [p.detach().requires_grad_(need) for p, need in zip(params, need_params)]
        with torch.enable_grad():
            t_graph = call_with(self.family, _input_map, self.names, ps, z_, scale)
        t = t_graph.detach()
        if scale is not None:
            t = t * scale
        expanded, cache = self.family.expand_cached(t)
        return expanded, (z_, ps, t_graph, t, cache, scale)

    def vjp(self, handle, grad_expanded, need_z: bool, need_params: list[bool]):
        z_, ps, t_graph, t, cache, scale = handle
        grad_t, own = self.family.expand_vjp(t, cache, grad_expanded.to(t.dtype))
        if scale is not None:
            grad_t = grad_t * scale
        chained = [(i, p) for i, (p, need) in enumerate(zip(ps, need_params))
                   if need and self.names[i] not in own]
        inputs = ([z_] if need_z else []) + [p for _, p in chained]
        found = []
        if inputs:
            if t_graph.requires_grad:
                found = list(torch.autograd.grad(t_graph, inputs, grad_t, allow_unused=True))
            found = [torch.zeros_like(i) if not found or found[k] is None else found[k]
                     for k, i in enumerate(inputs)]
        grad_z = found.pop(0) if need_z else None
        by_index = dict(zip((i for i, _ in chained), found))
        grads = []
        for i, need in enumerate(need_params):
            if not need:
                grads.append(None)
            elif self.names[i] in own:
                grads.append(own[self.names[i]].to(ps[i].dtype))
            else:
                grads.append(by_index[i])
        return grad_z, grads
