"""What the fused kernel costs a GPU's SM, checked without a GPU: registers, spills and shared
memory of its compiled cubin for sm_90 (H100/H200), per geometry.

Lowers the whole parity program for CUDA with the kernel on (Pallas -> Triton IR, as
``jax.jit(...).lower(lowering_platforms=("cuda",))`` does on any machine), compiles the
kernel's Triton IR with the ``triton`` package to a cubin and reads its resource usage with
the ``cuobjdump`` that ships with it. Needs ``pip install triton`` beside jax (a Python 3.12
virtual environment with jax 0.11 and triton 3.x was used for benchmarks/RESULTS.md):

    TRITON_DEFAULT_FP_FUSION=1 python benchmarks/kernel_resources.py [--warps 4,8,16]
        [--kernels pallas,pallas-3xtf32,pallas-2xtf32] 10 100 1000

Prints one line per width and dot variant (``kernel.variants``; a float32 program of the
boolean-input sparse task, which may run all three): the geometry (padded width, features,
batch, tile), the kernel's num_warps, REG / STACK (spilled bytes per thread) / shared memory,
and the SASS's tensor-core (HMMA, HGMMA) and float32 FMA (FFMA) instruction counts.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402

from parity_jax import core, kernel, trackers  # noqa: E402
from parity_jax.core import Shape  # noqa: E402
from parity_jax.tasks import sparse  # noqa: E402

VARIANTS = ("pallas", "pallas-3xtf32", "pallas-2xtf32")  # the GPU kernel's dot variants


def triton_modules(shape: Shape) -> list[str]:
    """The Triton IR (text) of every Pallas kernel in ``shape``'s program, lowered for CUDA."""
    from jax._src.pallas.triton import pallas_call_registration as reg

    try:  # jax >= 0.11 asks the device for its compute capability: lower for an H100
        from jax._src.pallas.triton import gpu_info
        gpu_info.get_gpu_info = lambda: gpu_info.get_gpu_info_from_version(
            gpu_info.GpuVersion.H100)
    except (ImportError, AttributeError):
        pass
    modules = []
    lower = reg.lowering.lower_jaxpr_to_triton_module

    def capture(*args, **kwargs):
        result = lower(*args, **kwargs)
        modules.append(result.module.operation.get_asm(enable_debug_info=False))
        return result

    reg.lowering.lower_jaxpr_to_triton_module = capture
    try:
        jax.jit(core.train, static_argnums=0).trace(shape, _batch(shape)).lower(
            lowering_platforms=("cuda",))
    finally:
        reg.lowering.lower_jaxpr_to_triton_module = lower
    return modules


def _batch(shape: Shape) -> core.Batch:
    lead = shape.lead
    key = jax.random.key(0)
    return core.Batch(
        task=sparse.Inputs(data_key=jax.random.split(key, shape.G),
                           k=jnp.full((shape.G,), 3, jnp.int32),
                           m=jnp.full((shape.G,), shape.task.M, jnp.int32),
                           noise=jnp.zeros((shape.G,), jnp.float32)),
        init_key=jax.random.split(key, lead), width=jnp.full(lead, shape.W, jnp.int32),
        sparse=jnp.zeros(lead, bool), s=jnp.full(lead, 2, jnp.int32),
        lr=jnp.full(lead, 0.1), wd=jnp.full(lead, 0.01), steps=jnp.full(lead, 100, jnp.int32),
        valid=jnp.ones(lead, bool),
        track=trackers.FirstHitInputs(threshold=jnp.full(lead, 0.1),
                                      stop_on_success=jnp.zeros(lead, bool)))


def resources(ttir: str, num_warps: int, num_stages: int = 1) -> str:
    """cuobjdump's resource line for the kernel compiled for sm_90, and its SASS's count of
    tensor-core (HMMA, HGMMA) and float32 FMA (FFMA) instructions."""
    import triton
    from triton.backends.compiler import GPUTarget

    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ttir")
        with open(src, "w") as f:
            f.write(ttir)
        compiled = triton.compile(src, target=GPUTarget("cuda", 90, 32),
                                  options={"num_warps": num_warps, "num_stages": num_stages})
        cubin = os.path.join(tmp, "kernel.cubin")
        with open(cubin, "wb") as f:
            f.write(compiled.asm["cubin"])
        out = _cuobjdump("--dump-resource-usage", cubin)
        sass = _cuobjdump("-sass", cubin).splitlines()
    line = next(x for x in out.splitlines() if "REG:" in x).split()
    usage = " ".join(x for x in line if x.split(":")[0] in ("REG", "STACK", "SHARED", "LOCAL"))
    mma = sum("HMMA" in x or "HGMMA" in x for x in sass)
    ffma = sum("FFMA" in x for x in sass)
    return f"{usage} (Triton shared {compiled.metadata.shared} B) HMMA/HGMMA:{mma} FFMA:{ffma}"


def _cuobjdump(*args: str) -> str:
    """The output of the ``cuobjdump`` that ships with triton."""
    import triton

    tools = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin")
    return subprocess.run([os.path.join(tools, "cuobjdump"), *args], capture_output=True,
                          text=True, check=True).stdout


def main(widths: list[int], warps: list[int] | None = None, n: int = 50,
         batch: int = 32, kernels: tuple[str, ...] = VARIANTS) -> None:
    """One line per width, kernel variant and num_warps (default: the kernel's own choice)."""
    print(f"jax {jax.__version__}; n={n}, batch={batch}, float32 program, boolean inputs")
    for W in widths:
        wp, np_, bp, tw = kernel.geometry(W, n, batch)
        where = "registers" if tw == wp else f"tiles of {tw}"
        for name in kernels:
            [ttir] = triton_modules(_shape(W, n, batch, name))
            for nw in warps or [kernel.num_warps(tw, np_, kernel.variant(name))]:
                print(f"width {W} {name}: Wp={wp} np={np_} Bp={bp} {where}, num_warps={nw}: "
                      f"{resources(ttir, nw)}", flush=True)


def _shape(W: int, n: int, batch: int, name: str) -> Shape:
    """A float32 program of the boolean-input parity task (every variant may run it) with
    the kernel ``name``."""
    task = sparse.SparseTask(n=n, M=1000, batch=batch, n_test=256, inputs="boolean")
    return Shape(task=task, depth=1, W=W, G=1, P=2, eval_every=100, loss="hinge",
                 layout="vmapped", precision="float32", kernel=name)


if __name__ == "__main__":
    args = sys.argv[1:]
    warps = None
    if args[:1] == ["--warps"]:
        warps, args = [int(w) for w in args[1].split(",")], args[2:]
    kernels = VARIANTS
    if args[:1] == ["--kernels"]:
        kernels, args = tuple(args[1].split(",")), args[2:]
    main([int(w) for w in args] or [10, 100, 1000], warps, kernels=kernels)
