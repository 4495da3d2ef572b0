"""The trial engine: one jitted program trains a whole batch of trials.

A batch is G groups x P trials. The P trials of a group see the same data and minibatch stream
(DESIGN §1: e.g. every trial of a ``vary = "init"`` study), so their first layers are one wide
(B, n) x (n, P*W) GEMM; groups are vmapped. Structure (n, depth, W, M, ...) is static;
everything numeric (widths, m, k, s, lr, wd, threshold, steps) is an array leaf.

Loop: ``lax.while_loop`` over evaluation intervals, ``lax.scan`` over the ``eval_every`` SGD
steps of an interval, evaluation at the end of each interval, exit once no trial is active.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import struct

from parity_jax import models, tasks
from parity_jax.models import Params


@dataclasses.dataclass(frozen=True)
class Shape:
    """Static structure of a compiled program (hashable: one compile per distinct Shape)."""

    n: int
    depth: int
    W: int  # padded width
    M: int  # padded training-set size
    batch: int
    n_test: int
    eval_every: int
    loss: str
    G: int  # groups per batch (each its own data stream)
    P: int  # trials per group (sharing the group's data stream)
    online: bool = False  # fresh minibatches from the distribution (no training set; M = 1)
    curves: int = 0  # evaluations recorded per trial (0: none)


@struct.dataclass
class Batch:
    """Per-group (G,) and per-trial (G, P) inputs of one compiled call."""

    data_key: jax.Array  # (G,) typed keys
    k: jax.Array  # (G,) int32
    m: jax.Array  # (G,) int32
    noise: jax.Array  # (G,) float32
    init_key: jax.Array  # (G, P) typed keys
    width: jax.Array  # (G, P) int32
    sparse: jax.Array  # (G, P) bool
    s: jax.Array  # (G, P) int32
    lr: jax.Array  # (G, P) float32
    wd: jax.Array  # (G, P) float32
    threshold: jax.Array  # (G, P) float32
    steps: jax.Array  # (G, P) int32
    stop_on_success: jax.Array  # (G, P) bool
    valid: jax.Array  # (G, P) bool: False for padding trials
    # Optional (lottery-ticket studies): start from only these first-layer neurons of the
    # init (the others are zero, so they stay zero), and shift a group's minibatch order.
    keep: jax.Array | None = None  # (G, P, W) bool
    order_salt: jax.Array | None = None  # (G,) int32: the order key is folded with it


@struct.dataclass
class Outcome:
    """Per-trial results, each (G, P)."""

    success: jax.Array
    first_hit: jax.Array  # step of the first evaluation with error <= threshold, -1 if none
    test_error: jax.Array  # at the trial's last evaluation (NaN if diverged)
    train_loss: jax.Array  # mean loss over its m training samples at the end (NaN if diverged)
    steps_run: jax.Array
    diverged: jax.Array
    curve_error: jax.Array  # (G, P, curves): test error at each evaluation (NaN: none)
    curve_loss: jax.Array  # (G, P, curves): train loss at each evaluation (NaN: none)


@struct.dataclass
class _State:
    params: Params
    t: jax.Array  # global step counter (multiple of eval_every between intervals)
    hit: jax.Array
    err: jax.Array
    steps_run: jax.Array
    stopped: jax.Array
    diverged: jax.Array
    curve_error: jax.Array
    curve_loss: jax.Array


def _bcast(v: jax.Array, leaf: jax.Array) -> jax.Array:
    """Per-trial (G, P) value broadcast against a (G, P, ...) parameter leaf."""
    return v.reshape(v.shape + (1,) * (leaf.ndim - v.ndim))


def sgd_update(params: Params, grads: Params, lr, wd, mask) -> Params:
    """Coupled weight decay SGD, w <- w - lr * (g + wd * w), only where ``mask``.

    Equal to optax.chain(add_decayed_weights(wd), sgd(lr)) (tested).
    """

    def upd(p, g):
        new = p - _bcast(lr, p) * (g + _bcast(wd, p) * p)
        return jnp.where(_bcast(mask, p), new, p)

    return jax.tree.map(upd, params, grads)


def _group_loss(loss: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Sum over the group's P trials of each trial's mean minibatch loss."""
    f = models.apply_packed(params, x)  # (B, P)
    return models.loss_fn(loss, f, y[:, None]).mean(axis=0).sum()


def _test_error(params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """(P,) fraction of test points with sign(f(x)) != y (f = 0 counts as an error)."""
    f = models.apply_packed(params, x)
    return jnp.mean(jnp.sign(f) != y[:, None], axis=0)


def _train_loss(loss: str, params: Params, x, y, m) -> jax.Array:
    """(P,) mean loss over the first m rows of the (padded) training set."""
    f = models.apply_packed(params, x)
    rows = (jnp.arange(x.shape[0]) < m).astype(jnp.float32)
    return jnp.sum(models.loss_fn(loss, f, y[:, None]) * rows[:, None], axis=0) / m


def batch_data(shape: Shape, b: Batch) -> tasks.Data:
    """The G groups' data streams, each distinct one generated once.

    Groups whose (data key, k, noise) are equal -- every group of a ``vary = "init"`` batch --
    hold the same training and test sets (m only limits which rows a group draws from), so a
    group copies the first equal group's sets instead of drawing them again.
    """
    G = b.k.shape[0]
    ident = jnp.concatenate([
        jax.random.key_data(b.data_key).reshape(G, -1).astype(jnp.uint32),
        b.k.astype(jnp.uint32)[:, None],
        jax.lax.bitcast_convert_type(b.noise, jnp.uint32)[:, None],
    ], axis=1)
    src = jnp.argmax(jnp.all(ident[:, None, :] == ident[None, :, :], axis=-1), axis=1)

    def sets(key, k, noise):
        return tasks.make_data(key, shape.n, k, 1, noise, shape.M, shape.n_test).replace(
            m=None, order_key=None)

    def group(args):
        g, key, k, noise = args
        empty = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype),
                             jax.eval_shape(sets, key, k, noise))
        return jax.lax.cond(src[g] == g, sets, lambda *_: empty, key, k, noise)

    data = jax.lax.map(group, (jnp.arange(G), b.data_key, b.k, b.noise))
    data = jax.tree.map(lambda v: v[src], data)
    order = jax.vmap(tasks.order_key)(b.data_key)
    if b.order_salt is not None:  # another minibatch order over the same data
        order = jax.vmap(jax.random.fold_in)(order, b.order_salt)
    return data.replace(m=b.m, order_key=order)


def init_batch(shape: Shape, b: Batch) -> tuple[tasks.Data, Params]:
    """Data streams (G,) and parameters (G, P) of a batch."""
    data = batch_data(shape, b)
    init = functools.partial(models.init_params, n=shape.n, W=shape.W, depth=shape.depth)
    params = jax.vmap(jax.vmap(lambda key, r, sp, s: init(key, width=r, sparse=sp, s=s)))(
        b.init_key, b.width, b.sparse, b.s
    )
    if b.keep is not None:
        k = b.keep.astype(jnp.float32)
        params = params.replace(w1=params.w1 * k[..., None], b1=params.b1 * k, a=params.a * k)
    return data, params


@functools.partial(jax.jit, static_argnums=0)
def initial_params(shape: Shape, b: Batch) -> Params:
    """The parameters a batch's trials start from (what ``train_batch`` initialises)."""
    return init_batch(shape, b)[1]


def fused_group_step(loss: str, params: Params, x, y, lr, wd, mask) -> Params:
    """One SGD step of a depth-1 group (P trials, one minibatch x (B, n), y (B,)), with a
    hand-written backward pass and the coupled weight-decay update fused in.

    Equal to jax.grad of ``_group_loss`` followed by ``sgd_update`` (tested).
    """
    B = x.shape[0]
    P, W, n = params.w1.shape
    zT = models.first_layer_packed(params, x)  # (P, W, B)
    hT = jax.nn.relu(zT)
    fT = jnp.einsum("pw,pwb->pb", params.a, hT) + params.c[:, None]  # (P, B)
    df = models.loss_grad(loss, fT, y[None, :]) / B  # d(mean loss)/df
    dzT = jnp.where(zT > 0, params.a[:, :, None] * df[:, None, :], 0.0)
    grads = Params(
        w1=(dzT.reshape(P * W, B) @ x).reshape(P, W, n),
        b1=dzT.sum(axis=-1),
        wh=params.wh,  # empty (depth 1)
        bh=params.bh,
        # a batched matvec, not sum(hT * df): XLA:CPU fuses that product into a slow reduce
        a=jnp.einsum("pwb,pb->pw", hT, df),
        c=df.sum(axis=-1),
    )
    # Per-trial (P,) lr/wd/mask against (P, ...) leaves, in the leaves' own shapes: an added
    # unit axis would put bitcasts between w1 and its update, and XLA:CPU then copies the
    # updated w1 into the loop carry every step instead of updating it in place.
    return sgd_update(params, grads, lr, wd, mask)


# Groups outermost, steps inside (cache blocking); None: on CPUs only. Read at trace time (tests
# flip it), never at import: a multi-host job must start JAX's runtime before any backend.
CACHE_BLOCKED: bool | None = None


def sgd_steps(shape: Shape, data: tasks.Data, params: Params, b: Batch, t0, active, n_steps):
    """Runs n_steps SGD steps from global step t0 for the trials where ``active``.

    depth 1 on CPU: groups one after another (``lax.map``), each running all n_steps of its
    fused step before the next group starts, so a group's parameters and activations stay in
    the core's L2 cache for the whole interval and its GEMMs are plain 2-D ones (XLA:CPU runs
    the batched ones ``vmap`` makes several times slower). depth 1 elsewhere (GPU/TPU): the
    fused step vmapped over groups, steps outermost. Deeper nets: ``jax.grad`` of the packed
    forward, vmapped over groups.
    """
    ts = t0 + jnp.arange(n_steps, dtype=jnp.int32)
    fused = functools.partial(fused_group_step, shape.loss)

    def minibatch(stream, t):
        """Step t's (B, n) inputs and (B,) labels of one group's stream."""
        order_key, m, x_train, y_train, secret, noise = stream
        if shape.online:
            return tasks.online_minibatch(order_key, t, secret, noise, shape.batch)
        idx = tasks.minibatch_indices(order_key, t, m, shape.batch)  # (B,)
        return x_train[idx], y_train[idx]

    streams = (data.order_key, data.m, data.x_train, data.y_train, data.secret, b.noise)
    blocked = CACHE_BLOCKED if CACHE_BLOCKED is not None else jax.default_backend() == "cpu"
    if shape.depth == 1 and blocked:
        def group(args):
            p, stream, lr, wd, act, steps = args
            if shape.online:  # fresh samples, drawn in the step
                draws = ts

                def batch_of(t):
                    return minibatch(stream, t)
            else:
                # The interval's minibatch indices in one vectorised draw (the same numbers as
                # one draw per step): on CPU each threefry call is a small loop of its own.
                order_key, m, x_train, y_train = stream[:4]
                draws = jax.vmap(
                    lambda t: tasks.minibatch_indices(order_key, t, m, shape.batch))(ts)

                def batch_of(i):
                    return x_train[i], y_train[i]

            def step(p, t_draw):
                t, draw = t_draw
                return fused(p, *batch_of(draw), lr, wd, act & (t < steps)), None

            return jax.lax.scan(step, p, (ts, draws))[0]

        return jax.lax.map(group, (params, streams, b.lr, b.wd, active, b.steps))

    grad_fn = jax.vmap(jax.grad(functools.partial(_group_loss, shape.loss)))

    def step(p, t):
        xb, yb = jax.vmap(minibatch, in_axes=(0, None))(streams, t)  # (G, B, n), (G, B)
        mask = active & (t < b.steps)
        if shape.depth == 1:
            return jax.vmap(fused)(p, xb, yb, b.lr, b.wd, mask), None
        return sgd_update(p, grad_fn(p, xb, yb), b.lr, b.wd, mask), None

    params, _ = jax.lax.scan(step, params, ts)
    return params


def train_batch(shape: Shape, b: Batch, devices: int | None = None) -> tuple[Outcome, Params]:
    """Trains a batch of G x P trials to completion; returns outcomes and final parameters.

    The G groups are split over ``gcd(G, devices)`` devices (default: all of them; a CPU is
    split into one device per core by ``parity_jax``'s import): each runs the same program on
    its share, with its own early exit. A group computes the same numbers on any of them.
    """
    return program(shape, devices)(b)


def program(shape: Shape, devices: int | None = None):
    """The jitted function that trains a batch of ``shape`` on the first ``devices`` devices
    (of all processes, in a multi-host job)."""
    return _program(shape, math.gcd(shape.G, devices or jax.device_count()))


def mesh(devices: int) -> jax.sharding.Mesh:
    """The first ``devices`` devices (of all processes) on one axis, "g": a batch's groups."""
    return jax.sharding.Mesh(np.array(jax.devices()[:devices]), ("g",))


@functools.cache
def _program(shape: Shape, devices: int):
    if devices == 1:
        return jax.jit(functools.partial(_train, shape))
    local = dataclasses.replace(shape, G=shape.G // devices)
    spec = jax.sharding.PartitionSpec("g")
    # check_vma=False: the body is per-shard code (its loops' carries are device-local).
    return jax.jit(jax.shard_map(functools.partial(_train, local), mesh=mesh(devices),
                                 in_specs=spec, out_specs=spec, check_vma=False))


def global_batch(shape: Shape, b: Batch, devices: int | None = None) -> Batch:
    """``b`` as arrays spread over the devices of all processes (multi-host: each process
    passes the same host values, the call reads its own devices' share). Keys travel as raw
    key data (``_train`` wraps them again)."""
    n = math.gcd(shape.G, devices or jax.device_count())
    sharding = jax.sharding.NamedSharding(mesh(n), jax.sharding.PartitionSpec("g"))

    def put(x):
        if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
            x = jax.random.key_data(x)
        x = np.asarray(x)
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, b)


def fetch(outcome: Outcome) -> Outcome:
    """Outcomes as host numpy arrays (gathered from every process in a multi-host job)."""
    if jax.process_count() == 1:
        return jax.device_get(outcome)
    from jax.experimental import multihost_utils

    return multihost_utils.process_allgather(outcome, tiled=True)


def _train(shape: Shape, b: Batch) -> tuple[Outcome, Params]:
    if not jnp.issubdtype(b.data_key.dtype, jax.dtypes.prng_key):  # raw key data
        b = b.replace(data_key=jax.random.wrap_key_data(b.data_key),
                      init_key=jax.random.wrap_key_data(b.init_key))
    data, params = init_batch(shape, b)
    G, P = shape.G, shape.P
    state = _State(
        params=params,
        t=jnp.zeros((), jnp.int32),
        hit=jnp.full((G, P), -1, jnp.int32),
        err=jnp.ones((G, P), jnp.float32),
        steps_run=jnp.zeros((G, P), jnp.int32),
        stopped=jnp.zeros((G, P), bool),
        diverged=jnp.zeros((G, P), bool),
        curve_error=jnp.full((G, P, shape.curves), jnp.nan, jnp.float32),
        curve_loss=jnp.full((G, P, shape.curves), jnp.nan, jnp.float32),
    )
    # The train loss is over the training set; an online trial has none: over its test set.
    loss_x, loss_y, loss_m = ((data.x_test, data.y_test, jnp.full((G,), shape.n_test))
                              if shape.online else (data.x_train, data.y_train, data.m))

    def train_loss_of(params):
        return jax.lax.map(lambda a: _train_loss(shape.loss, *a),
                           (params, loss_x, loss_y, loss_m))

    def active(st: _State):
        return b.valid & ~st.stopped & ~st.diverged & (st.steps_run < b.steps)

    def interval(st: _State) -> _State:
        act = active(st)
        params = sgd_steps(shape, data, st.params, b, st.t, act, shape.eval_every)
        t = st.t + shape.eval_every
        err = jax.lax.map(lambda a: _test_error(*a), (params, data.x_test, data.y_test))
        finite = models.is_finite(params)
        diverged = st.diverged | (act & ~finite)
        # A diverged trial is frozen at zero so nothing non-finite is carried further.
        params = jax.tree.map(
            lambda p: jnp.where(_bcast(diverged, p), jnp.zeros_like(p), p), params)
        evaluated = act & finite
        steps_run = jnp.where(act, jnp.minimum(t, b.steps), st.steps_run)
        new_hit = evaluated & (st.hit < 0) & (err <= b.threshold)
        hit = jnp.where(new_hit, steps_run, st.hit)
        curve_error, curve_loss = st.curve_error, st.curve_loss
        if shape.curves:  # evaluation i (0-based) after interval i
            slot = jnp.minimum(st.t // shape.eval_every, shape.curves - 1)
            nan = jnp.float32(jnp.nan)
            curve_error = curve_error.at[:, :, slot].set(jnp.where(evaluated, err, nan))
            curve_loss = curve_loss.at[:, :, slot].set(
                jnp.where(evaluated, train_loss_of(params), nan))
        return _State(
            params=params,
            t=t,
            hit=hit,
            err=jnp.where(evaluated, err, jnp.where(diverged, jnp.nan, st.err)),
            steps_run=steps_run,
            stopped=st.stopped | (b.stop_on_success & (hit >= 0)),
            diverged=diverged,
            curve_error=curve_error,
            curve_loss=curve_loss,
        )

    st = jax.lax.while_loop(lambda st: jnp.any(active(st)), interval, state)
    train_loss = train_loss_of(st.params)
    out = Outcome(
        success=st.hit >= 0,
        first_hit=st.hit,
        test_error=st.err,
        train_loss=jnp.where(st.diverged, jnp.nan, train_loss),
        steps_run=st.steps_run,
        diverged=st.diverged,
        curve_error=st.curve_error,
        curve_loss=st.curve_loss,
    )
    return out, st.params


# ---- reference path (tests and benchmarks): one unpadded trial, optax, no packing ------------


def reference_params(
    data_key, init_key, *, n, k, m, noise, width, depth, sparse, s, lr, wd, batch, loss, steps,
    online=False,
) -> Params:
    """Parameters of one trial after ``steps`` plain SGD steps (no evaluation, no stopping).

    The textbook implementation of DESIGN §1: unpadded width, the unpacked ``models.apply``,
    ``jax.grad`` and an optax optimizer. ``m``, ``width``, ``steps`` are Python ints; ``online``:
    each step's minibatch is fresh (``tasks.online_minibatch``), ``m`` is unused.
    """
    data = tasks.make_data(data_key, n, k, m, noise, m, 1)
    params = models.init_params(init_key, n, width, depth, width, sparse, s)
    opt = optax.inject_hyperparams(
        lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr))
    )(lr=lr, wd=wd)

    def step(carry, t):
        p, opt_state = carry
        if online:
            xb, yb = tasks.online_minibatch(data.order_key, t, data.secret, noise, batch)
        else:
            idx = tasks.minibatch_indices(data.order_key, t, data.m, batch)
            xb, yb = data.x_train[idx], data.y_train[idx]

        def loss_of(p):
            return jnp.mean(models.loss_fn(loss, models.apply(p, xb), yb))

        updates, opt_state = opt.update(jax.grad(loss_of)(p), opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return params


# ---- tabular (X, y) classification: a generic trainer over shared data ---------------------


@dataclasses.dataclass(frozen=True)
class XYShape:
    """Static structure of a tabular program: T trials of padded width W on (X, y) data."""

    d: int  # input features
    depth: int
    W: int
    T: int
    n_train: int  # rows of the (full) training split; a trial uses the first m of its order
    batch: int
    steps: int  # a multiple of eval_every
    eval_every: int
    optimizer: str  # sgd | adam


@struct.dataclass
class XYData:
    """The dataset every trial of a program shares (labels in {-1, +1}, float32)."""

    x_train: jax.Array  # (n_train, d)
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @classmethod
    def from_splits(cls, splits) -> XYData:
        """From ``tabular.Splits`` (0/1 labels) to device arrays with labels in {-1, +1}."""
        def pm(y):
            return jnp.asarray(2.0 * y - 1.0, jnp.float32)

        return cls(jnp.asarray(splits.x_train), pm(splits.y_train), jnp.asarray(splits.x_val),
                   pm(splits.y_val), jnp.asarray(splits.x_test), pm(splits.y_test))


@struct.dataclass
class XYBatch:
    """Per-trial (T,) inputs of a tabular program."""

    init_key: jax.Array  # typed keys
    order_key: jax.Array  # typed keys: minibatch order
    rows: jax.Array  # (T, n_train) int32: the trial's order of the training rows
    m: jax.Array  # int32: the trial trains on rows[:m] (its downsampled training set)
    width: jax.Array
    sparse: jax.Array
    s: jax.Array
    lr: jax.Array
    wd: jax.Array


@struct.dataclass
class XYOutcome:
    """Per-trial results (T,); *_best at the evaluation with the lowest validation loss."""

    val_loss: jax.Array  # best (lowest) mean validation logistic loss
    val_error: jax.Array
    test_error: jax.Array
    best_step: jax.Array
    final_val_loss: jax.Array
    final_test_error: jax.Array
    diverged: jax.Array
    curve_val_loss: jax.Array  # (T, steps // eval_every)
    curve_test_error: jax.Array


def _optimizer(name: str):
    """optax optimizer with per-trial hyperparameters as state leaves (vmap over trials):
    coupled weight decay then SGD or Adam."""

    def make(learning_rate, weight_decay):
        base = optax.adam(learning_rate) if name == "adam" else optax.sgd(learning_rate)
        return optax.chain(optax.add_decayed_weights(weight_decay), base)

    return optax.inject_hyperparams(make)


# Rows of the evaluation sets per forward pass, and activations (floats) per lax.map batch.
EVAL_ROWS, EVAL_FLOATS = 2048, 1 << 25


def _eval_sets(x: jax.Array, y: jax.Array):
    """x (N, d), y (N,) as (chunks, C, .) with a 0/1 weight for padding rows."""
    N = x.shape[0]
    C = min(EVAL_ROWS, N)
    chunks = -(-N // C)
    pad = chunks * C - N
    w = jnp.concatenate([jnp.ones(N), jnp.zeros(pad)]).reshape(chunks, C)
    x = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(chunks, C, -1)
    y = jnp.concatenate([y, jnp.ones(pad, y.dtype)]).reshape(chunks, C)
    return x, y, w, N


def _evaluate(shape: XYShape, params: Params, sets) -> tuple[jax.Array, jax.Array]:
    """(T,) mean logistic loss and (T,) error (sign(f) != y; f = 0 is an error) of every trial
    on one evaluation set, in row chunks and trial batches that bound the activations."""
    x, y, w, N = sets
    per_batch = max(1, min(shape.T, EVAL_FLOATS // (x.shape[1] * shape.W)))

    def trial(p):
        def chunk(acc, xs):
            xc, yc, wc = xs
            f = models.apply(p, xc)
            return acc + jnp.stack([jnp.sum(wc * models.loss_fn("logistic", f, yc)),
                                    jnp.sum(wc * (jnp.sign(f) != yc))]), None

        return jax.lax.scan(chunk, jnp.zeros(2), (x, y, w))[0] / N

    out = jax.lax.map(trial, params, batch_size=per_batch)
    return out[:, 0], out[:, 1]


@functools.partial(jax.jit, static_argnums=0)
def train_xy(shape: XYShape, data: XYData, b: XYBatch) -> XYOutcome:
    """Trains T MLPs on shared (X, y) data, each on its own downsampled training set.

    Trial i: ``models.init_params`` (dense or sparse, padded to W), then ``shape.steps``
    minibatch steps of the logistic loss (B rows drawn with replacement from its ``m`` rows,
    step t's draw from ``fold_in(order_key, t)``) with optax SGD or Adam and coupled weight
    decay; validation loss and test error every ``eval_every`` steps. A trial's results depend
    only on its own inputs, never on the other trials of the program.
    """
    init = functools.partial(models.init_params, n=shape.d, W=shape.W, depth=shape.depth)
    params = jax.vmap(lambda key, r, sp, s: init(key, width=r, sparse=sp, s=s))(
        b.init_key, b.width, b.sparse, b.s)
    opt = _optimizer(shape.optimizer)
    opt_state = jax.vmap(lambda p, lr, wd: opt(lr, wd).init(p))(params, b.lr, b.wd)
    update = opt(0.0, 0.0).update  # the hyperparameters live in the (vmapped) state

    def loss_of(p, x, y):
        return jnp.mean(models.loss_fn("logistic", models.apply(p, x), y))

    grad = jax.vmap(jax.grad(loss_of))

    def step(carry, t, frozen):
        params, opt_state = carry

        def draw(order_key, rows, m):
            i = jax.random.randint(jax.random.fold_in(order_key, t), (shape.batch,), 0, m)
            return rows[i]

        idx = jax.vmap(draw)(b.order_key, b.rows, b.m)  # (T, B)
        g = grad(params, data.x_train[idx], data.y_train[idx])
        updates, opt_state = jax.vmap(update)(g, opt_state, params)
        updates = jax.tree.map(lambda u: jnp.where(_bcast(frozen, u), 0.0, u), updates)
        return (optax.apply_updates(params, updates), opt_state), None

    val_sets = _eval_sets(data.x_val, data.y_val)
    test_sets = _eval_sets(data.x_test, data.y_test)
    T, inf = shape.T, jnp.float32(jnp.inf)

    def interval(carry, i):
        params, opt_state, best, diverged = carry
        ts = i * shape.eval_every + jnp.arange(shape.eval_every, dtype=jnp.int32)
        (params, opt_state), _ = jax.lax.scan(
            functools.partial(step, frozen=diverged), (params, opt_state), ts)
        diverged = diverged | ~models.is_finite(params)
        # A diverged trial is frozen at zero (no further updates): nothing non-finite is
        # carried further, and it is never selected (validation loss +inf).
        params = jax.tree.map(lambda p: jnp.where(_bcast(diverged, p), 0.0, p), params)
        val_loss, val_err = _evaluate(shape, params, val_sets)
        _, test_err = _evaluate(shape, params, test_sets)
        val_loss = jnp.where(diverged | ~jnp.isfinite(val_loss), inf, val_loss)
        test_err = jnp.where(diverged, jnp.nan, test_err)
        better = val_loss < best[0]
        step_no = (i + 1) * shape.eval_every
        best = tuple(jnp.where(better, new, old) for new, old in zip(
            (val_loss, val_err, test_err, jnp.full((T,), step_no, jnp.int32)), best,
            strict=True))
        return (params, opt_state, best, diverged), (val_loss, test_err)

    best0 = (jnp.full((T,), inf), jnp.full((T,), jnp.nan), jnp.full((T,), jnp.nan),
             jnp.full((T,), -1, jnp.int32))
    n_evals = shape.steps // shape.eval_every
    (_, _, best, diverged), (curve_loss, curve_err) = jax.lax.scan(
        interval, (params, opt_state, best0, jnp.zeros((T,), bool)),
        jnp.arange(n_evals, dtype=jnp.int32))
    return XYOutcome(
        val_loss=best[0], val_error=best[1], test_error=best[2], best_step=best[3],
        final_val_loss=curve_loss[-1], final_test_error=curve_err[-1], diverged=diverged,
        curve_val_loss=curve_loss.T, curve_test_error=curve_err.T)


def reference_xy(data: XYData, init_key, order_key, rows, *, m: int, width: int, depth: int,
                 sparse: bool, s: int, lr: float, wd: float, batch: int, steps: int,
                 optimizer: str) -> Params:
    """One unpadded trial of ``train_xy`` written plainly (tests): its parameters after
    ``steps`` steps, with the textbook optax optimizer built from Python floats."""
    d = data.x_train.shape[1]
    params = models.init_params(init_key, d, width, depth, width, sparse, s)
    base = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    opt = optax.chain(optax.add_decayed_weights(wd), base)

    def step(carry, t):
        p, st = carry
        i = jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)
        xb, yb = data.x_train[rows[i]], data.y_train[rows[i]]
        g = jax.grad(lambda p: jnp.mean(models.loss_fn("logistic", models.apply(p, xb), yb)))(p)
        updates, st = opt.update(g, st, p)
        return (optax.apply_updates(p, updates), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return params
