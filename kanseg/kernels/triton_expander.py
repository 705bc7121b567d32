"""The Triton expander of :class:`~kanseg.kernels.expand_conv.ExpandConv`: fused ν + basis kernels.

Torch keeps only what is not elementwise: a non-pointwise input map (Legendre's min-max, RBF's norm) and the flat
kernel parameter vector (e.g. Gram's coefficients from β); both are recomputed in backward under autograd, so their
parameters get gradients by the chain rule, while the kernels give dL/dt and the reduced kernel-parameter gradient.
"""

from __future__ import annotations

import torch

from kanseg.kernels.expand_conv import call_with
from kanseg.kernels.triton_expand import launch_backward, launch_forward
from kanseg.kernels.triton_families import get_triton_basis


class TritonExpander:
    """Expansion ``(B, C, *S) -> (B, C·P, *S)`` of ``family`` by Triton kernels, stored in ``out_dtype``.

    ``names``: the family's parameters, in the order :class:`ExpandConv` receives them.
    """

    def __init__(self, family: torch.nn.Module, names: list[str], out_dtype: torch.dtype | None = None):
        self.family, self.names, self.out_dtype = family, names, out_dtype
        self.kernels = get_triton_basis(family)

    def kernel_inputs(self, family, z, scale):
        """``(t, prm)``: the kernel's input (ν(z) in torch where ν is not pointwise, else z) and parameters."""
        t = z
        if self.kernels.torch_input_map:
            t = family.input_map(z if z.dtype == torch.float64 else z.float())
        return t, self.kernels.kernel_params(family, z)

    def _launch(self, t, scale, prm):
        flat_scale = None if scale is None else scale.reshape(-1).contiguous()
        out_dtype = self.out_dtype or (torch.float64 if t.dtype == torch.float64 else torch.float32)
        return launch_forward(self.kernels, t, flat_scale, prm.contiguous(), self.kernels.num_basis, out_dtype)

    def forward(self, z, scale, params):
        t, prm = self.kernel_inputs(self.family, z, scale)
        return self._launch(t, scale, prm)

    def prepare(self, z, scale, params, need_z: bool, need_params: list[bool]):
        """Kernel inputs recomputed under autograd: ``(t, prm, handle)``, ``t`` and ``prm`` detached and contiguous;
        ``handle`` goes to :meth:`chain`. Shared with the implicit-GEMM conv (``kanseg.kernels.implicit_gemm``)."""
        z_ = z.detach().requires_grad_(need_z)
        ps = [p.detach().requires_grad_(need) for p, need in zip(params, need_params)]
        with torch.enable_grad():
            t, prm = call_with(self.family, self.kernel_inputs, self.names, ps, z_, scale)
        return t.detach(), prm.detach().contiguous(), (z_, ps, t, prm)

    def recompute(self, z, scale, params, need_z: bool, need_params: list[bool]):
        t, prm, handle = self.prepare(z, scale, params, need_z, need_params)
        return self._launch(t, scale, prm), (handle, scale)

    def vjp(self, handle, grad_expanded, need_z: bool, need_params: list[bool]):
        handle, scale = handle
        t, prm = handle[2], handle[3]
        flat_scale = None if scale is None else scale.reshape(-1).contiguous()
        grad_t, part = launch_backward(self.kernels, t.detach(), flat_scale, prm.detach().contiguous(),
                                       self.kernels.num_basis, grad_expanded)
        return self.chain(handle, grad_t, part, need_z, need_params)

    def chain(self, handle, grad_t, part, need_z: bool, need_params: list[bool]):
        """``(dL/dz, [dL/dparam])`` from the kernels' ``dL/dt`` and parameter partials (for ``reduce``)."""
        z_, ps, t, prm = handle
        outputs, grads = [], []
        if t.requires_grad:
            outputs.append(t)
            grads.append(grad_t.to(t.dtype))
        if prm.requires_grad and self.kernels.npart:
            outputs.append(prm)
            grads.append(self.kernels.reduce(part).to(prm.dtype))
        inputs = ([z_] if need_z else []) + [p for p, need in zip(ps, need_params) if need]
        found = torch.autograd.grad(outputs, inputs, grads, allow_unused=True) if outputs and inputs else []
        found = [torch.zeros_like(i) if g is None else g for i, g in zip(inputs, found)] or \
            [torch.zeros_like(i) for i in inputs]
        grad_z = found.pop(0) if need_z else None
        return grad_z, [found.pop(0) if need else None for need in need_params]
