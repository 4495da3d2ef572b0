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
  (``Shape.kernel = "pallas-3xtf32"``) instead of IEEE float32 FMAs; an experiment until a GPU
  has shown it equal to the float32 path within the tests' tolerances.

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

KERNELS = ("off", "pallas", "pallas-3xtf32", "interpret")
ENV = settings.KERNEL  # overrides ``select``: one of ``settings.KERNEL_CHOICES``
MIN_TRIALS = 128  # about one trial per SM of an H100 (132)
MAX_WIDTH = 4096  # padded width; w1 of 4096 x 64 floats is 1 MiB
REG_FLOATS = 8192  # a trial's padded w1 is held in registers up to this many floats
TILE = 64  # neurons per tile when it is not
CALL_STEPS = 256  # steps per kernel call: an interval's draws are made a call at a time

# config.PRECISIONS -> the kernel's dots (Triton: IEEE FMA for float32, TF32 otherwise)
PRECISION = {"float32": jax.lax.Precision.HIGHEST, "tf32": jax.lax.Precision.HIGH,
             "bfloat16": jax.lax.Precision.DEFAULT}


def dot_precision(shape):
    """The precision of the kernel's dots in a program of ``shape``."""
    if shape.kernel == "pallas-3xtf32" and shape.precision == "float32":
        return jax.lax.DotAlgorithmPreset.TF32_TF32_F32_X3
    return PRECISION[shape.precision]


def variants(shape) -> tuple[str, ...]:
    """The kernel variants a depth-1 fused program may run ("": the plain kernel)."""
    return ("",)


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
    register geometry)."""
    np_, bp = _pow2(n), _pow2(batch)
    wp = _pow2(W)
    if wp * np_ <= REG_FLOATS:
        return wp, np_, bp, wp
    return TILE * -(-W // TILE), np_, bp, TILE


def num_warps(tw: int, np_: int) -> int:
    """Warps of a trial's program: enough threads that a (tw, np) block of weights and its
    step's temporaries stay in registers without spilling (checked for sm_90 by
    benchmarks/kernel_resources.py)."""
    floats = tw * np_
    return 16 if floats > 4096 else 8 if floats > 2048 else 4


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
    interpret = shape.kernel == "interpret"
    body = functools.partial(
        _kernel, lrs=len(hyper) // 2, loss=shape.loss, T=n_steps, B=task.batch, P=P, tw=tw,
        nt=wp // tw, precision=dot_precision(shape), barrier=not interpret)
    extra = {}
    if not interpret:
        pltriton = _triton()
        # num_stages=1: no software pipelining, whose prefetches would read a tile before
        # this step's store of it (the tile geometry reads what it wrote a step before)
        extra["compiler_params"] = pltriton.CompilerParams(num_warps=num_warps(tw, np_),
                                                           num_stages=1)
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


def _kernel(*refs, lrs, loss, T, B, P, tw, nt, precision, barrier):
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
        z = jax.lax.dot_general(w, x, (((1,), (1,)), ((), ())), precision=precision)
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
        gw = jnp.dot(dz, x, precision=precision)
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
