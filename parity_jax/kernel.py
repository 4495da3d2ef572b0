"""The fused GPU kernel: one Pallas program per trial runs a whole evaluation interval of the
depth-1 SGD step with the trial's weights on-chip (docs/DESIGN.md §2.13).

The XLA step (``steps.fused``) is a handful of kernels per SGD step, each streaming every
trial's first-layer weights through memory. Here a trial's program loads w1, b1, a and c once,
runs the interval's steps and writes them back once; minibatch rows are gathered by index from
the group's rows in HBM, the indices drawn up front with the same threefry streams as the XLA
step (``KernelTask.interval_source``). The semantics are those of ``steps.fused_group_step``: the
same forward pass, loss gradient, coupled weight decay and per-step mask (padded, stopped,
diverged and finished trials are left unchanged); only the order of the float32 sums differs.

Two geometries, chosen from the static shape:
- registers: a trial's padded w1 (Wp x np floats, powers of two) fits ``REG_FLOATS``; it is a
  loop carry for the whole interval;
- tiles: wider trials keep w1 in the kernel's output buffer (each trial's own slice, L2
  resident) and walk it in ``TILE``-neuron tiles, twice per step (forward, then backward and
  update), with no other memory traffic.

Selection (``select``) is a static field of the program's shape (``Shape.kernel``), decided
from the study alone (never from a batch's size, so a trial's numbers do not depend on shards,
devices or the memory budget): "pallas" on GPUs for depth-1 programs of at most
``MAX_WIDTH`` neurons whose study runs at least ``MIN_TRIALS`` trials in the program -- one
trial is one program on one SM, so a handful of trials would leave the GPU idle, and a
wider trial's weights fit neither on-chip nor, many at once, in L2 -- and "off" elsewhere.
``PARITY_JAX_KERNEL`` overrides it:
- ``off``: the XLA step everywhere (for comparison);
- ``on``: the kernel for every depth-1 program on a GPU, whatever its width and trials;
- ``interpret``: the kernel in Pallas' interpret mode on any platform (how the tests check it
  on a CPU);
- ``3xtf32``: as ``on``, with float32 programs' kernel dots as three TF32 tensor-core passes
  (``Shape.kernel = "pallas-3xtf32"``).

Variants (``variants``, ``variant``): a float32 program's dots may run on TF32 tensor cores
without losing float32 accuracy, by splitting each float32 operand v into two TF32 numbers,
v = hi + lo (``split``), and summing the dots of the parts that matter:
- "3xtf32" (any inputs): a.b ~ ahi.bhi + ahi.blo + alo.bhi, three TF32 dots (alo.blo, about
  2^-22 of a.b, is dropped);
- "2xtf32" (boolean inputs only): one operand of both of the kernel's dots (w.x forward,
  dz.x backward) is the input x, whose +-1 and 0 are exact TF32 numbers, so only the other
  operand is split: w.x = whi.x + wlo.x, two TF32 dots.
The split is done here with integer bit operations (``tf32``), not by Triton's dot algorithm, so
the same arithmetic runs in interpret mode on a CPU (``interpreted``): a product of two TF32
numbers (11-bit significands) is exact in float32 there as on a tensor core. The split
variants keep their hi and lo copies in registers, so they run fewer, fatter threads
(``num_warps``). The tests check each, in interpret mode, against the XLA step at float32's
tolerance (``kernel_check.self_check``); their speed on a GPU is not measured yet. ``select``
names "pallas-3xtf32" under ``3xtf32``; a program of another variant names it in
``Shape.kernel`` (``KERNELS``).

Lowering: Pallas' Triton backend (``compiler_params``), which jax 0.10 and 0.11 both have
(0.11 marks it deprecated in favour of Mosaic GPU). It is imported when a kernel is built, never
at import time: on a jax without it the kernel is unavailable (``available``), "auto" quietly
runs the XLA step and "on" is an error.

Fail-safe: ``parity_jax.kernel_check`` checks a program's kernel against the XLA step before
its first use and keeps the verdicts; ``devices.FailSafe`` runs a program whose kernel fails
its check, or fails to lower, compile or run, on the XLA step instead. This module is the
program alone: it imports nothing above the steps it serves.
"""

from __future__ import annotations

import functools
import importlib
from typing import TYPE_CHECKING

import jax
import jax.numpy as jnp

from parity_jax import errors, models, settings

if TYPE_CHECKING:
    from parity_jax.models import Params
    from parity_jax.tasks import KernelTask

_NO_PALLAS = ""  # why Pallas did not import
try:
    from jax.experimental import pallas as pl
except ImportError as e:  # a jax without Pallas: no kernel (``available``), the rest works
    pl, _NO_PALLAS = None, f": {type(e).__name__}: {e}"

KERNELS = ("off", "pallas", "pallas-3xtf32", "pallas-2xtf32", "interpret", "interpret-3xtf32",
           "interpret-2xtf32")
ENV = settings.KERNEL  # overrides ``select``: one of ``settings.KERNEL_CHOICES``
MIN_TRIALS = 128  # about one trial per SM of an H100 (132)
MAX_WIDTH = 4096  # padded width; w1 of 4096 x 64 floats is 1 MiB
REG_FLOATS = 8192  # a trial's padded w1 is held in registers up to this many floats
TILE = 64  # neurons per tile when it is not
# warps of a trial's program, at most, by dot variant: a split variant's hi and lo copies
# spill at 16 warps (128 registers a thread) and fit at 8 (255) in the register geometry
MAX_WARPS = {"": 16, "3xtf32": 8, "2xtf32": 8}
CALL_STEPS = 256  # steps per kernel call: an interval's draws are made a call at a time

# config.PRECISIONS -> the kernel's dots (Triton: IEEE FMA for float32, TF32 otherwise)
PRECISION = {"float32": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.HIGH,
             "bfloat16": jax.lax.Precision.DEFAULT}


def variant(name: str) -> str:
    """The dot variant of a kernel name (``KERNELS``): "" (plain dots), "3xtf32" or "2xtf32"."""
    return name.partition("-")[2]


def interpreted(name: str) -> bool:
    """Whether a kernel name runs in Pallas' interpret mode (a CPU's kernel)."""
    return name.startswith("interpret")


def variants(shape) -> tuple[str, ...]:
    """The dot variants a depth-1 fused program of ``shape`` may run: plain dots always; in a
    float32 program also "3xtf32", and "2xtf32" where the task's inputs are exact TF32
    numbers (boolean: +-1, and 0 in padding)."""
    if shape.precision != "float32":
        return ("",)
    boolean = getattr(shape.task, "inputs", None) == "boolean"
    return ("", "3xtf32", "2xtf32") if boolean else ("", "3xtf32")


def tf32(v):
    """``v`` (float32) rounded to the nearest TF32 number (10 explicit significand bits), ties
    away from zero: half a TF32 ulp (bit 12) is added to the bits, and the 13 bits below
    TF32's significand cleared. NaN and infinities are kept as they are (a GPU's NaN,
    0x7FFFFFFF, would carry into the sign bit and become -0: a diverged trial's weights would
    look finite to its dots)."""
    bits = jax.lax.bitcast_convert_type(v, jnp.int32)
    bits = (bits + jnp.int32(0x1000)) & jnp.int32(-0x2000)  # -0x2000: the mask 0xFFFFE000
    return jnp.where(jnp.isfinite(v), jax.lax.bitcast_convert_type(bits, jnp.float32), v)


def split(v):
    """(hi, lo): two TF32 numbers with hi + lo = ``v`` within 2^-22 |v| (v - hi is exact
    in float32; lo rounds it to TF32)."""
    hi = tf32(v)
    return hi, tf32(v - hi)


# The split dots, after Ootomo & Yokota (2022), "Recovering single precision accuracy from
# Tensor Cores while surpassing the FP32 theoretical peak performance" (IJHPCA), and NVIDIA
# CUTLASS's 3xTF32 (``OpMultiplyAddFastF32``): a = ahi + alo, b = bhi + blo, and a.b without
# its alo.blo term (2^-22 of it) is three TF32 dots, the small terms summed first. Each dot's
# operands are exact TF32 numbers, so the tensor core's rounding of them is a no-op, and every
# product (two 11-bit significands) is exact in float32: a CPU's float32 dot (interpret mode)
# computes the same products. Where the second operand is the boolean input x (+-1 or 0, exact
# in TF32: x = xhi, xlo = 0), the two terms with xlo vanish and a.x = ahi.x + alo.x exactly
# as the 3-pass sum, in two passes.
TF32 = jax.lax.Precision.HIGH  # Triton: a TF32 tensor-core dot


def _plain(a, x, dims, precision):
    """One dot at the program's precision (float32: IEEE FMAs in Triton)."""
    return jax.lax.dot_general(a, x, dims, precision=precision)


def _three_pass(a, x, dims, precision):
    """3xtf32: both operands split, three TF32 dots."""
    (ahi, alo), (xhi, xlo) = split(a), split(x)
    small = _plain(ahi, xlo, dims, TF32) + _plain(alo, xhi, dims, TF32)
    return small + _plain(ahi, xhi, dims, TF32)


def _two_pass(a, x, dims, precision):
    """2xtf32: ``a`` split, ``x`` exact in TF32 (boolean inputs), two TF32 dots."""
    ahi, alo = split(a)
    return _plain(alo, x, dims, TF32) + _plain(ahi, x, dims, TF32)


DOTS = {"": _plain, "3xtf32": _three_pass, "2xtf32": _two_pass}  # by ``variant``


def kernel_dot(shape):
    """The kernel's dot of a program of ``shape``: ``dot(a, x, dims)``, x the minibatch's
    inputs. A variant splits the dots of float32 programs only (TF32 and bfloat16 programs
    round their operands anyway)."""
    precision = PRECISION[shape.precision]
    dot = DOTS[variant(shape.kernel)] if shape.precision == "float32" else _plain
    return functools.partial(dot, precision=precision)


def requested() -> str:
    """``PARITY_JAX_KERNEL``, read now (``settings.kernel``): "auto" by default; a value not
    allowed is an error naming the variable."""
    return settings.kernel()


def select(platform: str, depth: int, step: str, W: int = 0, trials: int = MIN_TRIALS) -> str:
    """The kernel (``KERNELS``) of a program of this depth, step and padded width ``W`` on
    ``platform``, whose study runs ``trials`` trials in it. A kernel this jax cannot build
    (``available``) is "off" in "auto" mode and an error naming ``PARITY_JAX_KERNEL`` when
    asked for."""
    want = requested()
    if want == "off" or depth != 1 or step != "fused":
        return "off"
    if want == "interpret":
        return _unless_unavailable(want, "interpret", interpret=True)
    if platform not in ("gpu", "cuda"):
        return "off"
    if want == "auto" and (trials < MIN_TRIALS or W > MAX_WIDTH):
        return "off"
    return _unless_unavailable(want, "pallas-3xtf32" if want == "3xtf32" else "pallas")


def _unless_unavailable(want: str, kernel: str, interpret: bool = False) -> str:
    ok, why = available(interpret)
    if ok:
        return kernel
    if want == "auto":
        return "off"
    raise errors.ConfigError(f"{ENV} = {want!r}: the fused kernel is unavailable ({why}); "
                      "use auto or off")


def available(interpret: bool = False) -> tuple[bool, str]:
    """Whether this jax can build the kernel -- Pallas and its Triton lowering for GPUs (with
    ``interpret``: Pallas alone) -- and, if not, why (one line)."""
    if pl is None:
        return False, f"this jax ({jax.__version__}) has no Pallas{_NO_PALLAS}"
    if interpret:
        return True, ""
    try:
        _triton()
    except (ImportError, AttributeError) as e:
        return False, (f"this jax ({jax.__version__}) has no Pallas Triton lowering: "
                       + errors.error_line(e))
    return True, ""


def _triton():
    """Pallas' Triton backend (imported here, not at import time: a future jax may drop it)."""
    module = importlib.import_module("jax.experimental.pallas.triton")
    for name in ("CompilerParams", "debug_barrier"):
        getattr(module, name)
    return module


def _pow2(v: int, floor: int = 16) -> int:
    return max(floor, 1 << max(0, v - 1).bit_length())


def geometry(W: int, n: int, batch: int) -> tuple[int, int, int, int]:
    """(Wp, np, Bp, TW): padded width, features and batch of the kernel (Triton's tensors
    have power-of-two sides of at least 16 in a dot) and its neurons per tile (TW = Wp: the
    register geometry). Every dot variant has the same: the width is the M side of both
    dots (w.x and dz.x), Wp or TILE, a multiple of 64 from 64 neurons."""
    np_, bp = _pow2(n), _pow2(batch)
    wp = _pow2(W)
    if wp * np_ <= REG_FLOATS:
        return wp, np_, bp, wp
    return TILE * -(-W // TILE), np_, bp, TILE


def num_warps(tw: int, np_: int, variant: str = "") -> int:
    """Warps of a trial's program of dot ``variant``: enough threads that a (tw, np) block of
    weights and its step's temporaries stay in registers without spilling, and few enough
    that each thread has the registers its variant needs (``MAX_WARPS``; checked for sm_90
    by benchmarks/kernel_resources.py)."""
    floats = tw * np_
    return min(MAX_WARPS[variant], 16 if floats > 4096 else 8 if floats > 2048 else 4)


def extra_floats(shape) -> int:
    """Floats a group adds in the kernel path: its padded parameters and rows, a call's row
    indices (and an online group's fresh minibatches, drawn unpadded then padded)."""
    task = shape.task
    wp, np_, bp, _ = geometry(shape.W, task.n, task.batch)
    steps = min(shape.eval_every, CALL_STEPS)
    rows = steps * task.batch * (2 if task.online else 0) + (0 if task.online else task.M)
    return shape.P * wp * (np_ + 2) + rows * (np_ + 1) + steps * bp


def interval(shape, streams, params: Params, hyper, t0, active, n_steps: int) -> Params:
    """``steps.interval`` for depth-1 fused SGD: runs ``n_steps`` steps from global step ``t0``
    for the (G, P) trials where ``active``; ``hyper``: (lr, wd, steps, the per-layer lr
    multipliers of ``models.scalings`` or None). One kernel call per ``CALL_STEPS`` steps (so
    the memory of an interval's draws is bounded whatever ``eval_every`` is; the numbers are
    the same)."""
    assert shape.depth == 1 and shape.step == "fused", "the kernel is depth-1 fused SGD"
    full, rest = divmod(n_steps, CALL_STEPS)

    def chunk(params, t, k):
        return _call(shape, streams, params, hyper, t, active, k)

    if full:
        params = jax.lax.fori_loop(
            0, full, lambda c, p: chunk(p, t0 + c * CALL_STEPS, CALL_STEPS), params)
    return chunk(params, t0 + full * CALL_STEPS, rest) if rest else params


def _call(shape, streams, params: Params, hyper, t0, active, n_steps: int) -> Params:
    """One kernel call: ``n_steps`` steps from global step ``t0``."""
    task: KernelTask = shape.task
    lr, wd, steps, scales = hyper
    G, P, W, n = params.w1.shape
    N = G * P
    # each layer's lr, then each layer's wd (w1, b1, a, c: MuSGD's lr * m_l and wd / m_l);
    # standard passes its one lr and wd, so its program is the one it was before
    # parametrizations existed
    mults = [] if scales is None else [scales.w1, scales.b1, scales.a, scales.c]
    hyper = [lr, wd] if scales is None else [lr * m for m in mults] + [wd / m for m in mults]
    wp, np_, bp, tw = geometry(W, n, task.batch)
    ts = t0 + jnp.arange(n_steps, dtype=jnp.int32)
    xs, ys, rows = jax.vmap(lambda s: task.interval_source(s, ts))(streams)
    xs = jnp.pad(xs, ((0, 0), (0, 0), (0, np_ - n)))
    rows = jnp.pad(rows, ((0, 0), (0, 0), (0, bp - task.batch)))
    # steps each trial still takes in this interval: step i runs iff i < left
    left = jnp.where(active, jnp.clip(steps - t0, 0, n_steps), 0).reshape(N)
    w1 = jnp.pad(params.w1.reshape(N, W, n), ((0, 0), (0, wp - W), (0, np_ - n)))
    b1 = jnp.pad(params.b1.reshape(N, W), ((0, 0), (0, wp - W)))
    a = jnp.pad(params.a.reshape(N, W), ((0, 0), (0, wp - W)))
    c = params.c.reshape(N)
    interpret = interpreted(shape.kernel)
    body = functools.partial(
        _kernel, lrs=len(hyper) // 2, loss=shape.loss, T=n_steps, B=task.batch, P=P, tw=tw,
        nt=wp // tw, dot=kernel_dot(shape), barrier=not interpret)
    extra = {}
    if not interpret:
        pltriton = _triton()
        # num_stages=1: no software pipelining, whose prefetches would read a tile before
        # this step's store of it (the tile geometry reads what it wrote a step before)
        warps = num_warps(tw, np_, variant(shape.kernel))
        extra["compiler_params"] = pltriton.CompilerParams(num_warps=warps, num_stages=1)
    out = pl.pallas_call(
        body,
        out_shape=[jax.ShapeDtypeStruct(v.shape, v.dtype) for v in (w1, b1, a, c)],
        grid=(N,),
        input_output_aliases={len(hyper) + 4 + j: j for j in range(4)},
        interpret=interpret,
        name="parity_jax_fused_interval",
        **extra,
    )(*(v.reshape(N) for v in hyper), left, rows, xs, ys, w1, b1, a, c)
    w1, b1, a, c = out
    return params.replace(w1=w1[:, :W, :n].reshape(G, P, W, n),
                          b1=b1[:, :W].reshape(G, P, W), a=a[:, :W].reshape(G, P, W),
                          c=c.reshape(G, P))


def _kernel(*refs, lrs, loss, T, B, P, tw, nt, dot, barrier):
    """One trial's interval. Refs hold every trial's (or group's) arrays: this program reads
    and writes its own trial ``i`` (of group ``i // P``) only. The first ``lrs`` refs are the
    learning rates, the next ``lrs`` the weight decays: one for every layer, or one per layer
    (w1, b1, a, c: ``models.scalings``).
    """
    (left_ref, rows_ref, x_ref, y_ref, w1_in, b1_in, a_in, c_in, w1_ref, b1_ref, a_ref,
     c_ref) = refs[2 * lrs:]
    i = pl.program_id(0)
    g = i // P
    lr, wd = [ref[i] for ref in refs[:lrs]], [ref[i] for ref in refs[lrs:2 * lrs]]
    lw, lb, la, lc = zip(lr * 4, wd * 4, strict=True) if lrs == 1 else zip(lr, wd, strict=True)
    left = left_ref[i]
    bp = rows_ref.shape[-1]
    live = jnp.arange(bp) < B  # padded minibatch rows add nothing

    def batch(t):
        r = rows_ref[g, t, :]
        return x_ref[g, r, :], y_ref[g, r]

    def forward(w, b, a, x):
        z = dot(w, x, (((1,), (1,)), ((), ())))
        z = z + b[:, None]  # (tw, bp)
        h = jnp.where(live[None, :], jnp.maximum(z, 0.0), 0.0)  # padded rows: nothing
        return z, h, jnp.sum(a[:, None] * h, axis=0)

    def loss_grad(f, y):
        return jnp.where(live, models.loss_grad(loss, f, y) / B, 0.0)

    def sgd(p, grad, on, hyper):  # coupled weight decay, only on the trial's live steps
        lr, wd = hyper
        return jnp.where(on, p - lr * (grad + wd * p), p)

    def update(w, b, a, z, h, x, df, on):
        dz = jnp.where(z > 0, a[:, None] * df[None, :], 0.0)
        gw = dot(dz, x, (((1,), (0,)), ((), ())))
        return (sgd(w, gw, on, lw), sgd(b, jnp.sum(dz, axis=1), on, lb),
                sgd(a, jnp.sum(h * df[None, :], axis=1), on, la))

    c = c_in[i]
    if nt == 1:  # registers: the carry is the whole trial
        def step(t, carry):
            w, b, a, c = carry
            x, y = batch(t)
            z, h, f = forward(w, b, a, x)
            df = loss_grad(f + c, y)
            on = t < left
            return update(w, b, a, z, h, x, df, on) + (sgd(c, jnp.sum(df), on, lc),)

        w, b, a, c = jax.lax.fori_loop(0, T, step, (w1_in[i], b1_in[i], a_in[i], c))
        w1_ref[i], b1_ref[i], a_ref[i] = w, b, a
        c_ref[i] = c
        return

    def tile(j):
        return pl.ds(pl.multiple_of(j * tw, tw), tw)

    def copy_in(j, _):
        w1_ref[i, tile(j), :] = w1_in[i, tile(j), :]
        b1_ref[i, tile(j)] = b1_in[i, tile(j)]
        a_ref[i, tile(j)] = a_in[i, tile(j)]
        return 0

    def sync():  # this program's stores are visible to all its threads before the next pass
        if barrier:
            _triton().debug_barrier()

    jax.lax.fori_loop(0, nt, copy_in, 0)
    sync()

    def step(t, c):
        x, y = batch(t)

        def fwd(j, f):
            return f + forward(w1_ref[i, tile(j), :], b1_ref[i, tile(j)], a_ref[i, tile(j)],
                               x)[2]

        f = jax.lax.fori_loop(0, nt, fwd, jnp.zeros((bp,), jnp.float32))
        sync()  # every tile read before the first is overwritten
        df = loss_grad(f + c, y)
        on = t < left

        def bwd(j, _):
            w, b, a = w1_ref[i, tile(j), :], b1_ref[i, tile(j)], a_ref[i, tile(j)]
            z, h, _ = forward(w, b, a, x)
            w, b, a = update(w, b, a, z, h, x, df, on)
            w1_ref[i, tile(j), :] = w
            b1_ref[i, tile(j)] = b
            a_ref[i, tile(j)] = a
            return 0

        jax.lax.fori_loop(0, nt, bwd, 0)
        sync()
        return sgd(c, jnp.sum(df), on, lc)

    c_ref[i] = jax.lax.fori_loop(0, T, step, c)
