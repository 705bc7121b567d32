"""Fused KAN kernels: a memory-saving autograd path for the KAN conv layers, and Triton expansion kernels.

    >>> import os; os.environ["KANSEG_KERNELS"] = "eager"   # or "fused" / "auto" (default)

:func:`basis_conv` and :func:`activation_conv` are what ``kanseg.kan.KANConv`` calls when :func:`use_fused` says so;
:func:`kan_conv_fused` (opt-in, stage 2) computes both branches of a layer in one implicit-GEMM pass.
Nothing here imports ``kanseg.kan``; Triton is imported only when a Triton backend is used.
"""

from kanseg.kernels.dispatch import (
    BACKENDS,
    ENV_VAR,
    MODES,
    STAGE2_FAMILIES,
    TRITON_FAMILIES,
    activation_conv,
    basis_conv,
    kernel_mode,
    select_backend,
    stage2_chosen,
    triton_available,
    triton_family_names,
    use_fused,
)
from kanseg.kernels.analytic_expander import AnalyticExpander
from kanseg.kernels.expand_conv import ConvGeometry, ExpandConv, ExpandConvPlan, TorchExpander
from kanseg.kernels.implicit_gemm_fused import fusable, kan_conv_fused
from kanseg.kernels.stage2_table import stage2_family_names

__all__ = [
    "AnalyticExpander",
    "BACKENDS",
    "ENV_VAR",
    "MODES",
    "STAGE2_FAMILIES",
    "TRITON_FAMILIES",
    "ConvGeometry",
    "ExpandConv",
    "ExpandConvPlan",
    "TorchExpander",
    "activation_conv",
    "basis_conv",
    "fusable",
    "kan_conv_fused",
    "kernel_mode",
    "select_backend",
    "stage2_chosen",
    "stage2_family_names",
    "triton_available",
    "triton_family_names",
    "use_fused",
]
