"""Compile every family's expansion kernels for an sm_90 GPU with Triton's real compiler (no GPU needed).

Run as a script, without ``TRITON_INTERPRET`` (``test_triton_compile.py`` does): the interpreter accepts code that
the compiler rejects, so this catches what the interpreter tests cannot.
"""

import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kanseg.kan import create_kan_conv
from kanseg.kernels import TRITON_FAMILIES
from kanseg.kernels import triton_expand as te
from kanseg.kernels.triton_families import get_triton_basis

TARGET = GPUTarget("cuda", 90, 32)


def compile_family(family: str, in_type: str, out_type: str) -> None:
    spec = get_triton_basis(create_kan_conv(family, 3, 4, 4, 3).basis)
    k0, k1, k2 = spec.constants
    f64 = in_type == "fp64"
    prm = "*fp64" if f64 else "*fp32"
    common = dict(MAP=spec.map_id, P=spec.num_basis, K0=k0, K1=k1, K2=k2, HAS_SCALE=True, F64=f64, BLOCK=1024)
    sig = {"x_ptr": f"*{in_type}", "out_ptr": f"*{out_type}", "scale_ptr": prm, "prm_ptr": prm, "C": "i32",
           "S": "i32", "FWD": "constexpr", **{k: "constexpr" for k in common}}
    triton.compile(ASTSource(te.expand_fwd_kernel, sig, {"FWD": spec.fwd, **common}), target=TARGET)
    sig = {"x_ptr": f"*{in_type}", "g_ptr": f"*{out_type}", "gx_ptr": f"*{in_type}", "scale_ptr": prm,
           "prm_ptr": prm, "part_ptr": prm, "C": "i32", "S": "i32", "BWD": "constexpr", "NPART": "constexpr",
           **{k: "constexpr" for k in common}}
    triton.compile(ASTSource(te.expand_bwd_kernel, sig, {"BWD": spec.bwd, "NPART": max(spec.npart, 1), **common}),
                   target=TARGET)


if __name__ == "__main__":
    for family in TRITON_FAMILIES:
        for in_type, out_type in (("fp32", "fp32"), ("bf16", "bf16"), ("fp64", "fp64")):
            compile_family(family, in_type, out_type)
            print(family, in_type, out_type, "ok", flush=True)
    sys.exit(0)
