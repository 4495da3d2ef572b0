"""The one vectorized core: a batch of trials is (task, model, step, tracker), trained by one
loop (docs/DESIGN.md §2).

While any trial is active: run an evaluation interval of ``eval_every`` steps (``lax.scan``
inside ``steps.interval``), evaluate, freeze diverged trials, update the tracker. Structure
(the task's sizes, depth, padded width W, G groups x P trials, step, layout) is static: the
program's ``Shape``; every numeric setting (widths, m, s, lr, wd, threshold, steps) is an array
leaf of the ``Batch``, so new values compile nothing.
"""

from __future__ import annotations

import dataclasses
import functools

import jax
import jax.numpy as jnp
from flax import struct

from parity_jax import models, steps, trackers
from parity_jax.models import Params
from parity_jax.steps import bcast
from parity_jax.tasks import PyTree, SharedInputs, Task, TaskInputs, typed_key


@dataclasses.dataclass(frozen=True)
class Shape:
    """Static structure of a compiled program (hashable: one compile per distinct Shape).

    ``task``: the task's static structure (the ``tasks.Task`` protocol: ``tasks.sparse.SparseTask``
    or ``tasks.xy.XYTask``). A batch has G groups; a packed task's groups hold P trials sharing
    their minibatches (per-trial arrays are (G, P)), otherwise every group is one trial
    (per-trial arrays are (G,), P = 1).
    """

    task: Task
    depth: int
    W: int  # padded width
    G: int  # groups per batch
    P: int  # trials per group
    eval_every: int
    loss: str
    step: str = "fused"  # steps.STEPS
    layout: str = "vmapped"  # steps.LAYOUTS: "blocked" on CPUs
    tracker: str | trackers.Tracker = "first_hit"  # trackers.TRACKERS, or one (FirstHit(terms))
    curves: int = 0  # evaluations recorded per trial (0: none)
    precision: str = "float32"  # of every matmul: config.PRECISIONS (float32 = exact)
    kernel: str = "off"  # kernel.KERNELS: "pallas" runs depth-1 intervals as one GPU kernel
    chunk: int = 1  # groups computed together (G is a multiple): see ``train``
    param: str = "standard"  # models.PARAMS: per-layer init and lr scaling with width
    base_width: int = 1  # the width at which "mup" equals "standard" (mup only)

    @property
    def lead(self) -> tuple[int, ...]:
        """The leading (trial) axes of every per-trial array."""
        return (self.G, self.P) if self.task.packed else (self.G,)


@struct.dataclass
class Batch:
    """The inputs of one compiled call: per-group/per-trial leaves (leading axes
    ``shape.lead``) and the ``shared`` arrays every group reads (replicated over devices)."""

    task: TaskInputs  # the task's per-group inputs (tasks.sparse.Inputs / tasks.xy.Inputs)
    init_key: jax.Array  # typed keys (or raw key data)
    width: jax.Array  # int32
    sparse: jax.Array  # bool
    s: jax.Array  # int32
    lr: jax.Array  # float32
    wd: jax.Array  # float32
    steps: jax.Array  # int32
    valid: jax.Array  # bool: False for padding trials
    track: trackers.TrackerInputs = None  # the tracker's per-trial inputs (FirstHitInputs)
    shared: SharedInputs = None  # the task's shared inputs (tasks.xy.Shared) or None


@struct.dataclass
class _State:
    params: Params
    opt: PyTree  # the step's optimizer state
    t: jax.Array  # global step counter (multiple of eval_every between intervals)
    steps_run: jax.Array
    diverged: jax.Array
    track: trackers.TrackerState
    curves: dict


def typed(shape: Shape, b: Batch) -> Batch:
    """``b`` with raw key data (multi-host global arrays) wrapped as typed keys."""
    return b.replace(init_key=typed_key(b.init_key), task=shape.task.typed(b.task))


def init_params(shape: Shape, b: Batch) -> Params:
    """The parameters a batch's trials start from: the model's init padded to W, then the
    task's ``initial``."""
    init = functools.partial(models.init_params, n=shape.task.features, W=shape.W,
                             depth=shape.depth, param=shape.param, base_width=shape.base_width)
    fn = steps.over_groups(lambda key, r, sp, s: init(key, width=r, sparse=sp, s=s),
                           len(shape.lead))
    return shape.task.initial(fn(b.init_key, b.width, b.sparse, b.s), b.task)


def step_hyper(shape: Shape, b: Batch) -> tuple:
    """What ``steps.interval`` reads per trial: (lr, wd, steps, the per-layer lr multipliers
    of ``shape.param`` at each trial's width, or None for standard)."""
    scaled = models.scalings(shape.param, shape.base_width, b.width, shape.step)
    return b.lr, b.wd, b.steps, None if scaled is None else scaled.lr


@functools.partial(jax.jit, static_argnums=0)
def initial_params(shape: Shape, b: Batch) -> Params:
    """``init_params`` compiled (what ``train`` starts from)."""
    with jax.default_matmul_precision(MATMUL_PRECISION[shape.precision]):
        return init_params(shape, typed(shape, b))


# config.PRECISIONS -> jax.default_matmul_precision: float32 is exact everywhere (on GPUs JAX's
# default float32 matmul is TF32, whose rounding depends on the GEMM's shape: a trial's numbers
# would depend on its batchmates); tf32 is 3 passes fewer; bfloat16 is JAX's DEFAULT precision
# (one bfloat16 pass on TPUs, TF32 on NVIDIA GPUs).
MATMUL_PRECISION = {"float32": "float32", "tf32": "tensorfloat32", "bfloat16": "bfloat16"}


def train(shape: Shape, b: Batch) -> tuple[PyTree, Params]:
    """Trains a batch to completion; returns the tracker's outcomes and the final parameters.

    Every matmul traced here carries the shape's precision explicitly (docs/DESIGN.md §1.7).

    Batch invariance by construction: the G groups train in chunks of ``shape.chunk`` groups,
    one chunk after another (``lax.map``), each chunk a whole program of G = chunk (its own
    init, intervals, evaluations and early exit). Every array a group's arithmetic touches then
    has the same shape whatever G is, so a compiler has no reason to pick another vectorisation,
    GEMM algorithm or reduction order for it because more groups share the call (XLA:CPU did,
    on AVX2 and not AVX-512; cuBLAS heuristics go by batch count). On a GPU, XLA's autotuner
    still times GEMM algorithms when a program compiles, so a fresh compile may choose
    differently: ``parity-jax doctor`` checks invariance on the device. The plan picks
    ``chunk`` from the study alone, never from G.
    """
    if shape.G % shape.chunk:
        raise ValueError(f"G = {shape.G} is not a multiple of chunk = {shape.chunk}")
    with jax.default_matmul_precision(MATMUL_PRECISION[shape.precision]):
        if shape.G == shape.chunk:
            return _train(shape, b)
        one = dataclasses.replace(shape, G=shape.chunk)
        n = shape.G // shape.chunk

        def split(x):  # (G, ...) -> (G / chunk, chunk, ...)
            return x.reshape((n, shape.chunk) + x.shape[1:])

        chunks = jax.tree.map(split, b.replace(shared=None))
        out = jax.lax.map(lambda c: _train(one, c.replace(shared=b.shared)), chunks)
        return jax.tree.map(lambda x: x.reshape((shape.G,) + x.shape[2:]), out)


def _train(shape: Shape, b: Batch) -> tuple[PyTree, Params]:
    b = typed(shape, b)
    task: Task = shape.task
    step = steps.make(shape)
    tracker: trackers.Tracker = trackers.make(shape.tracker)
    streams, shared = task.prepare(b.task, b.shared)
    params = init_params(shape, b)
    lead = shape.lead
    nan_curve = jnp.full(lead + (shape.curves,), jnp.nan, jnp.float32)
    state = _State(
        params=params,
        opt=steps.over_groups(step.init, len(lead))(params, b.lr, b.wd),
        t=jnp.zeros((), jnp.int32),
        steps_run=jnp.zeros(lead, jnp.int32),
        diverged=jnp.zeros(lead, bool),
        track=tracker.init(lead),
        curves={name: nan_curve for name in tracker.curves},
    )
    with_loss = shape.curves > 0 and "loss" in tracker.curves
    hyper = step_hyper(shape, b)

    def active(st: _State):
        return (b.valid & ~tracker.stopped(st.track) & ~st.diverged
                & (st.steps_run < b.steps))

    def interval(st: _State) -> _State:
        act = active(st)
        params, opt = steps.interval(shape, step, streams, shared, st.params, st.opt,
                                     hyper, st.t, act, shape.eval_every)
        t = st.t + shape.eval_every
        metrics = task.evaluate(shape.loss, params, streams, shared, with_loss)
        finite = models.is_finite(params)
        diverged = st.diverged | (act & ~finite)
        # A diverged trial is frozen at zero so nothing non-finite is carried further.
        params = jax.tree.map(
            lambda p: jnp.where(bcast(diverged, p), jnp.zeros_like(p), p), params)
        evaluated = act & finite
        steps_run = jnp.where(act, jnp.minimum(t, b.steps), st.steps_run)
        curves = st.curves
        if shape.curves:  # evaluation i (0-based) after interval i
            slot = jnp.minimum(st.t // shape.eval_every, shape.curves - 1)
            curves = {name: c.at[..., slot].set(jnp.where(evaluated, metrics[name], jnp.nan))
                      for name, c in curves.items()}
        return _State(
            params=params, opt=opt, t=t, steps_run=steps_run, diverged=diverged,
            track=tracker.update(st.track, metrics, evaluated, diverged, steps_run, b.track),
            curves=curves,
        )

    st = jax.lax.while_loop(lambda st: jnp.any(active(st)), interval, state)
    final = task.final(shape.loss, st.params, streams, shared)
    return tracker.outcome(st.track, st.steps_run, st.diverged, st.curves, final), st.params
