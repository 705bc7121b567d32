"""Compile the implicit-GEMM kernels (stage 2) for an sm_90 GPU with Triton's real compiler (no GPU needed).

Run as a script without ``TRITON_INTERPRET`` (``test_stage2_compile.py`` does). Every stage-2 family in bf16 (3D,
3×3×3, the launchers' GPU block sizes), and Gram also with fp32 (tf32 dots), fp16 and fp64 operands and with the
fused SiLU base branch (bf16).
"""

import sys

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

from kanseg.kan import create_kan_conv
from kanseg.kernels import STAGE2_FAMILIES
from kanseg.kernels import implicit_gemm_kernels as ik
from kanseg.kernels.implicit_gemm_basis import stage2_functions
from kanseg.kernels.triton_families import get_triton_basis

TARGET = GPUTarget("cuda", 90, 32)
SIZES = ["B", "C", "D", "H", "W", "Do", "Ho", "Wo", "Cg", "Og"]
GEOMETRY = dict(KD=3, KH=3, KW=3, SD=1, SH=1, SW=1, PD=1, PH=1, PW=1, LD=1, LH=1, LW=1)
PRECISION = {"fp32": "tf32", "bf16": "ieee", "fp16": "ieee", "fp64": "ieee"}


def _signature(pointers: dict, constants: dict) -> dict:
    return {**{k: f"*{v}" for k, v in pointers.items()}, **{k: "i32" for k in SIZES},
            **{k: "constexpr" for k in constants}}


def compile_family(family: str, dot: str, base: int = 0) -> None:
    spec = get_triton_basis(create_kan_conv(family, 3, 32, 32, 3).basis)
    value, adjoint = stage2_functions(spec)
    f64 = dot == "fp64"
    basis_in = dot if not spec.torch_input_map or f64 else "fp32"  # torch input maps hand the kernel fp32
    acc = "fp64" if f64 else "fp32"
    P = spec.num_basis
    PP = triton.next_power_of_2(P + base)
    common = dict(MAP=spec.map_id, P=P, K0=spec.constants[0], HAS_SCALE=True, F64=f64, PRECISION=PRECISION[dot],
                  BASE=base, ACT=base, **GEOMETRY)
    fwd = dict(VALUE=value, BM=64, BN=64, BC=32, **common)
    ptrs = dict(x_ptr=basis_in, w_ptr=dot, y_ptr=dot, scale_ptr=acc, prm_ptr=acc)
    triton.compile(ASTSource(ik.kan_conv_fwd_kernel, _signature(ptrs, fwd), fwd), target=TARGET)
    dx = dict(ADJOINT=adjoint, PP=PP, NPART=spec.npart, BM=64, BC=32, BO=64, **common)
    ptrs = dict(x_ptr=basis_in, w_ptr=dot, gy_ptr=dot, gx_ptr=basis_in, scale_ptr=acc, prm_ptr=acc, part_ptr=acc)
    triton.compile(ASTSource(ik.kan_conv_dx_kernel, _signature(ptrs, dx), dx), target=TARGET)
    dw = dict(VALUE=value, PP=PP, BO=64, BC=64, BK=64, **common)
    ptrs = dict(x_ptr=basis_in, gy_ptr=dot, gw_ptr=acc, scale_ptr=acc, prm_ptr=acc)
    sig = _signature(ptrs, dw)
    sig = {**{k: v for k, v in sig.items() if v != "constexpr"}, "chunk": "i32", "split": "i32",
           **{k: v for k, v in sig.items() if v == "constexpr"}}
    triton.compile(ASTSource(ik.kan_conv_dw_kernel, sig, dw), target=TARGET)


CASES = [(family, "bf16", 0) for family in STAGE2_FAMILIES] + [("gram", "fp32", 0), ("gram", "fp16", 0),
                                                                ("gram", "fp64", 0), ("gram", "bf16", 1)]

if __name__ == "__main__":
    for family, dot, base in CASES:  # base = 1: the fused SiLU base branch (implicit_gemm_fused)
        compile_family(family, dot, base)
        print(family, dot, "base" * base, "ok", flush=True)
    sys.exit(0)
