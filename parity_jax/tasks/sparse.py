"""The (n, k) sparse task: secret set, training set, test set, minibatch order.

Parity (y = prod_{i in S} x_i on Boolean inputs, the default) keeps its own code, bit for bit;
any other target of ``parity_jax.targets`` draws x from ``SparseTask.inputs`` (uniform ±1 or
N(0, I_n)) with the same indexed streams and labels it y = target(x_S), S an ordered draw of k
coordinates.

Every random draw is indexed (row i from ``fold_in(key, i)``, step t from ``fold_in(key, t)``)
so a trial's data never depends on the padded shapes of the batch it runs in: the first m rows
of an M-row training set are the same m rows a lone trial would draw, and nested sizes give
nested sets (the m=200 training set is a prefix of the m=500 one for the same data seed).

As a task of the core (docs/DESIGN.md §2): a batch is G groups x P trials; the P trials of a
group share one data stream (and so one minibatch per step), generated inside the program.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from parity_jax import models, targets, terms
from parity_jax.models import Params
from parity_jax.tasks import interval_indices, minibatch_indices, success, typed_key

# Sub-streams of a trial's data key (_DRAW: its target's per-stream draw, e.g. random signs
# of a direction).
_SECRET, _TRAIN, _TEST, _NOISE, _ORDER, _DRAW = range(6)


@struct.dataclass
class Data:
    """One data stream: parity secret, fixed training set and a fresh test set.

    Shapes: x_train (M, n), y_train (M,), x_test (n_test, n), y_test (n_test,), secret (n,).
    """

    secret: jax.Array  # bool (n,): coordinates in S
    x_train: jax.Array
    y_train: jax.Array  # labels after noise flips
    x_test: jax.Array
    y_test: jax.Array
    m: jax.Array  # int32 scalar: rows [0, m) of x_train are the training set
    order_key: jax.Array
    noise: jax.Array | None = None  # float32 scalar: label noise (online draws flip with it)
    coords: jax.Array | None = None  # int32 (k,): S in order (targets other than parity)
    draw: jax.Array | None = None  # its target's per-stream draw (targets.Target.draw)


def secret_of(data_key: jax.Array, n: int, k: jax.Array) -> jax.Array:
    """The secret set S (bool (n,)) of the stream with this data key."""
    return secret_mask(jax.random.fold_in(data_key, _SECRET), n, k)


def secret_mask(key: jax.Array, n: int, k: jax.Array) -> jax.Array:
    """S as a bool mask: the k coordinates with the smallest uniform draws (no replacement)."""
    u = jax.random.uniform(key, (n,))
    rank = jnp.argsort(jnp.argsort(u))
    return rank < k


def parity(x: jax.Array, secret: jax.Array) -> jax.Array:
    """y = prod_{i in S} x_i for x in {-1,+1}^n (float32)."""
    return jnp.prod(jnp.where(secret, x, 1.0), axis=-1)


def rademacher_rows(key: jax.Array, rows: int, n: int) -> jax.Array:
    """(rows, n) of +-1 floats, row i drawn from fold_in(key, i)."""

    def row(i):
        return jax.random.rademacher(jax.random.fold_in(key, i), (n,), dtype=jnp.float32)

    return jax.vmap(row)(jnp.arange(rows))


def make_data(
    key: jax.Array, n: int, k: jax.Array, m: jax.Array, noise: jax.Array, M: int, n_test: int
) -> Data:
    """Data stream of one trial; rows beyond m (up to the bucket's M) are padding."""
    secret = secret_of(key, n, k)
    x_train = rademacher_rows(jax.random.fold_in(key, _TRAIN), M, n)
    x_test = rademacher_rows(jax.random.fold_in(key, _TEST), n_test, n)
    noise_key = jax.random.fold_in(key, _NOISE)
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(noise_key, i)))(jnp.arange(M))
    flip = u < noise
    y_train = jnp.where(flip, -1.0, 1.0) * parity(x_train, secret)
    return Data(
        secret=secret,
        x_train=x_train,
        y_train=y_train,
        x_test=x_test,
        y_test=parity(x_test, secret),
        m=jnp.asarray(m, jnp.int32),
        order_key=order_key(key),
    )


def order_key(key: jax.Array) -> jax.Array:
    """The key of a data stream's minibatch order (``Data.order_key``)."""
    return jax.random.fold_in(key, _ORDER)


def online_minibatch(order_key: jax.Array, t: jax.Array, secret: jax.Array, noise: jax.Array,
                     batch: int) -> tuple[jax.Array, jax.Array]:
    """Step t's fresh minibatch of an online trial: ``batch`` new samples (row i from
    ``fold_in(fold_in(order_key, t), i)``), labels flipped with probability ``noise``."""
    key = jax.random.fold_in(order_key, t)
    x = rademacher_rows(jax.random.fold_in(key, _TRAIN), batch, secret.shape[0])
    flip = jax.random.uniform(jax.random.fold_in(key, _NOISE), (batch,)) < noise
    return x, jnp.where(flip, -1.0, 1.0) * parity(x, secret)


# ---- targets other than parity ----------------------------------------------------------------


def gaussian_rows(key: jax.Array, rows: int, n: int) -> jax.Array:
    """(rows, n) of N(0, 1) floats, row i drawn from fold_in(key, i)."""

    def row(i):
        return jax.random.normal(jax.random.fold_in(key, i), (n,), dtype=jnp.float32)

    return jax.vmap(row)(jnp.arange(rows))


def input_rows(inputs: str, key: jax.Array, rows: int, n: int) -> jax.Array:
    """(rows, n) inputs of the distribution ``inputs`` ("boolean" or "gaussian"), row i drawn
    from fold_in(key, i): nested training sets, bits independent of padding."""
    if inputs == "boolean":
        return rademacher_rows(key, rows, n)
    if inputs == "gaussian":
        return gaussian_rows(key, rows, n)
    raise ValueError(f"unknown inputs {inputs!r}")


def ordered_secret(data_key: jax.Array, n: int, k: int) -> tuple[jax.Array, jax.Array]:
    """S of the stream with this data key: (bool mask (n,), int32 coordinates (k,) in order).
    The mask is ``secret_of``'s; the order is that of the coordinates' uniform draws."""
    u = jax.random.uniform(jax.random.fold_in(data_key, _SECRET), (n,))
    rank = jnp.argsort(jnp.argsort(u))
    return rank < k, jnp.argsort(u)[:k].astype(jnp.int32)


def target_draw(task: SparseTask, data_key: jax.Array) -> jax.Array | None:
    """The stream's draw of its target (``targets.Target.draw``; None if it has none)."""
    draw = targets.get(task.target).draw
    return None if draw is None else draw(jax.random.fold_in(data_key, _DRAW), task.k,
                                          task.n, dict(task.params))


def target_z(task: SparseTask, x: jax.Array, coords: jax.Array) -> jax.Array:
    """What the target's function reads of (rows, n) inputs: z = x_S (rows, k), or x itself
    for a target that reads every coordinate (``targets.reads_all``: hermite's sphere)."""
    return x if targets.reads_all(task.target, dict(task.params)) else x[:, coords]


def _labels(task: SparseTask, x: jax.Array, coords: jax.Array,
            draw: jax.Array | None) -> jax.Array:
    """y = target(x_S) of (rows, n) inputs, float32 (rows,)."""
    args = targets.Args(k=task.k, params=dict(task.params), draw=draw)
    return targets.values(task.target, target_z(task, x, coords), args)


def input_set(inputs: str, key: jax.Array, which: str, rows: int, n: int) -> jax.Array:
    """The first ``rows`` inputs of the stream's training set (``which`` = "train") or test
    set ("test"), as ``make_target_data`` draws them."""
    sub = {"train": _TRAIN, "test": _TEST}[which]
    return input_rows(inputs, jax.random.fold_in(key, sub), rows, n)


def test_labels(task: SparseTask, key: jax.Array, n_test: int) -> jax.Array:
    """y_test (n_test,) of the stream with this data key, as ``make_target_data`` draws it."""
    coords = ordered_secret(key, task.n, task.k)[1]
    x = input_set(task.inputs, key, "test", n_test, task.n)
    return _labels(task, x, coords, target_draw(task, key))


def _flip(task: SparseTask, y: jax.Array, u: jax.Array, noise: jax.Array) -> jax.Array:
    """A ±1 target's labels flipped where ``u < noise``; a real-valued target has no noise."""
    if not targets.is_binary(task.target):
        return y
    return jnp.where(u < noise, -1.0, 1.0) * y


def make_target_data(task: SparseTask, key: jax.Array, m: jax.Array, noise: jax.Array, M: int,
                     n_test: int) -> Data:
    """``make_data`` of a target other than parity (static k: z = x_S is (rows, k))."""
    n, k = task.n, task.k
    secret, coords = ordered_secret(key, n, k)
    draw = target_draw(task, key)
    x_train = input_rows(task.inputs, jax.random.fold_in(key, _TRAIN), M, n)
    x_test = input_rows(task.inputs, jax.random.fold_in(key, _TEST), n_test, n)
    noise_key = jax.random.fold_in(key, _NOISE)
    u = jax.vmap(lambda i: jax.random.uniform(jax.random.fold_in(noise_key, i)))(jnp.arange(M))
    return Data(
        secret=secret,
        x_train=x_train,
        y_train=_flip(task, _labels(task, x_train, coords, draw), u, noise),
        x_test=x_test,
        y_test=_labels(task, x_test, coords, draw),
        m=jnp.asarray(m, jnp.int32),
        order_key=order_key(key),
        coords=coords,
        draw=draw,
    )


def online_target_minibatch(task: SparseTask, order_key: jax.Array, t: jax.Array,
                            coords: jax.Array, draw: jax.Array | None, noise: jax.Array,
                            batch: int):
    """``online_minibatch`` of a target other than parity: the same streams (row i from
    ``fold_in(fold_in(order_key, t), i)``), x from ``task.inputs``, y = target(x_S)."""
    key = jax.random.fold_in(order_key, t)
    x = input_rows(task.inputs, jax.random.fold_in(key, _TRAIN), batch, task.n)
    u = jax.random.uniform(jax.random.fold_in(key, _NOISE), (batch,))
    return x, _flip(task, _labels(task, x, coords, draw), u, noise)


def _test_nmse(params: Params, x: jax.Array, y: jax.Array, var: jax.Array | None = None,
               chunk: int = 0) -> jax.Array:
    """(P,) normalized test MSE: mean (f(x) - y)^2 over the test set / ``var`` (None: the
    test labels' variance, their mean square deviation from their mean), over row chunks of
    ``chunk`` rows (0: all at once)."""
    if var is None:
        var = jnp.mean(jnp.square(y - jnp.mean(y)))
    if not chunk or chunk >= x.shape[0]:
        f = models.apply_packed(params, x)
        return jnp.mean(jnp.square(f - y[:, None]), axis=0) / var
    sq = _chunked(lambda f, y: jnp.square(f - y), params, x, y, x.shape[0], chunk)
    return sq / x.shape[0] / var


def target_fields(cell) -> dict:
    """The static ``SparseTask`` fields of a cell's target (or a task's of single values: its
    inputs, target, k and ``params``, the target's (name, value) pairs): inputs and target, and
    for targets other than parity the static k and its parameters; with ``nmse`` =
    "population", the target's population moments; with ``recover`` set, its terms."""
    if cell.target == targets.DEFAULT:
        return {"inputs": cell.inputs, "target": cell.target}
    out = {"inputs": cell.inputs, "target": cell.target, "k": cell.k,
           "params": tuple(cell.params)}
    if getattr(cell, "nmse", None) == "population":
        out["population"] = terms.population_moments(cell.target, cell.k, tuple(cell.params),
                                                     cell.inputs)
    if getattr(cell, "recover", None) is not None:
        out["terms"] = terms.terms_of(cell.target, cell.k, dict(cell.params))
    return out


# ---- the task in the core -------------------------------------------------------------------


@struct.dataclass
class Inputs:
    """Per-group (G,) inputs of a parity batch."""

    data_key: jax.Array  # (G,) typed keys (or raw key data, see ``SparseTask.typed``)
    k: jax.Array  # (G,) int32
    m: jax.Array  # (G,) int32
    noise: jax.Array  # (G,) float32


def _group_loss(loss: str, params: Params, x: jax.Array, y: jax.Array) -> jax.Array:
    """Sum over a group's P trials of each trial's mean minibatch loss."""
    f = models.apply_packed(params, x)  # (B, P)
    return models.loss_fn(loss, f, y[:, None]).mean(axis=0).sum()


def _test_error(params: Params, x: jax.Array, y: jax.Array, chunk: int = 0) -> jax.Array:
    """(P,) fraction of test points with sign(f(x)) != y (f = 0 counts as an error), over
    row chunks of ``chunk`` rows (0: all at once; the counts are exact either way)."""
    if not chunk or chunk >= x.shape[0]:
        f = models.apply_packed(params, x)
        return jnp.mean(jnp.sign(f) != y[:, None], axis=0)
    wrong = _chunked(lambda f, y: (jnp.sign(f) != y).astype(jnp.float32), params, x, y,
                     x.shape[0], chunk)
    return wrong / x.shape[0]


def _train_loss(loss: str, params: Params, x, y, m, chunk: int = 0) -> jax.Array:
    """(P,) mean loss over the first m rows of the (padded) training set, over row chunks of
    ``chunk`` rows (0: all at once)."""
    if not chunk or chunk >= x.shape[0]:
        f = models.apply_packed(params, x)
        rows = (jnp.arange(x.shape[0]) < m).astype(jnp.float32)
        return jnp.sum(models.loss_fn(loss, f, y[:, None]) * rows[:, None], axis=0) / m
    return _chunked(lambda f, y: models.loss_fn(loss, f, y), params, x, y, m, chunk) / m


def _chunked(per_row, params: Params, x, y, rows, chunk: int) -> jax.Array:
    """(P,) sum of ``per_row(f, y)`` over the first ``rows`` rows of (x, y), ``chunk`` rows of
    activations at a time: the memory of an evaluation is bounded by the plan, not by the
    data."""
    N = x.shape[0]
    chunks = -(-N // chunk)
    pad = chunks * chunk - N
    xc = jnp.concatenate([x, jnp.zeros((pad, x.shape[1]), x.dtype)]).reshape(chunks, chunk, -1)
    yc = jnp.concatenate([y, jnp.ones((pad,), y.dtype)]).reshape(chunks, chunk)
    start = jnp.arange(chunks) * chunk

    def body(acc, xs):
        xb, yb, s = xs
        live = ((s + jnp.arange(chunk)) < rows).astype(jnp.float32)
        f = models.apply_packed(params, xb)  # (chunk, P)
        return acc + jnp.sum(per_row(f, yb[:, None]) * live[:, None], axis=0), None

    P = params.c.shape[0]
    return jax.lax.scan(body, jnp.zeros((P,), jnp.float32), (xc, yc, start))[0]


@dataclasses.dataclass(frozen=True)
class SparseTask:
    """Static structure of the sparse task in a program (hashable: part of its shape).

    ``target`` other than parity makes k static (``k``: z = x_S has the static shape
    (rows, k)) with its parameters ``params`` ((name, value) pairs: ``targets.cell_params``);
    parity keeps k a per-group input (``Inputs.k``) and ``k = 0`` here.
    """

    n: int
    M: int  # padded training-set size
    batch: int
    n_test: int
    online: bool = False  # fresh minibatches from the distribution (no training set; M = 1)
    eval_rows: int = 0  # rows per evaluation chunk (0: every row at once)
    inputs: str = "boolean"  # targets.INPUTS
    target: str = targets.DEFAULT  # a registered target (parity_jax.targets)
    k: int = 0  # |S| of a target other than parity (parity: 0, k per group)
    params: tuple[tuple[str, object], ...] = ()  # its target's parameters (hashable values)
    # a real-valued target's (variance, mean square) over its inputs: success divides the test
    # MSE by that variance (train.nmse = "population"); (): by the test labels' variance
    population: tuple[float, float] = ()
    terms: tuple = ()  # its terms (``terms.Term``) whose recovery is measured (train.recover)

    packed = True  # a group's P trials share their minibatches: one wide GEMM

    def __post_init__(self):
        if self.parity and (self.inputs != "boolean" or self.k):
            raise ValueError("the parity task has boolean inputs and k per group (k = 0 here)")
        if not self.parity and self.k < 1:
            raise ValueError(f"target {self.target!r} needs its static k >= 1, got {self.k}")

    @property
    def features(self) -> int:
        return self.n

    @property
    def train_rows(self) -> int:
        return self.M

    @property
    def label(self) -> str:
        name = targets.label(self.target, dict(self.params))
        return name if self.inputs == "boolean" else f"{name} ({self.inputs})"

    @property
    def parity(self) -> bool:
        """Whether this is the parity task (its own code: every number as before targets)."""
        return self.target == targets.DEFAULT

    def make_data(self, key: jax.Array, k: jax.Array, m: jax.Array, noise: jax.Array, M: int,
                  n_test: int) -> Data:
        """One stream's data (``make_data``; ``make_target_data`` for other targets, whose k is
        static: the ``k`` given is then ignored)."""
        if self.parity:
            return make_data(key, self.n, k, m, noise, M, n_test)
        return make_target_data(self, key, m, noise, M, n_test)

    def typed(self, inputs: Inputs) -> Inputs:
        """Wraps raw key data (multi-host global arrays carry keys as uint32) as typed keys."""
        return inputs.replace(data_key=typed_key(inputs.data_key))

    def prepare(self, inputs: Inputs, shared: None) -> tuple[Data, None]:
        """The G groups' data streams (and no shared data), each distinct one generated once.

        Groups whose (data key, k, noise) are equal -- every group of a ``vary = "init"``
        batch -- hold the same training and test sets (m only limits which rows a group draws
        from), so a group copies the first equal group's sets instead of drawing them again.
        """
        b = inputs
        G = b.k.shape[0]
        ident = jnp.concatenate([
            jax.random.key_data(b.data_key).reshape(G, -1).astype(jnp.uint32),
            b.k.astype(jnp.uint32)[:, None],
            jax.lax.bitcast_convert_type(b.noise, jnp.uint32)[:, None],
        ], axis=1)
        src = jnp.argmax(jnp.all(ident[:, None, :] == ident[None, :, :], axis=-1), axis=1)

        def sets(key, k, noise):
            return self.make_data(key, k, 1, noise, self.M, self.n_test).replace(
                m=None, order_key=None)

        def group(args):
            g, key, k, noise = args
            empty = jax.tree.map(lambda v: jnp.zeros(v.shape, v.dtype),
                                 jax.eval_shape(sets, key, k, noise))
            return jax.lax.cond(src[g] == g, sets, lambda *_: empty, key, k, noise)

        data = jax.lax.map(group, (jnp.arange(G), b.data_key, b.k, b.noise))
        data = jax.tree.map(lambda v: v[src], data)
        order = jax.vmap(order_key)(b.data_key)
        return data.replace(m=b.m, order_key=order, noise=b.noise), None

    def initial(self, params: Params, inputs: Inputs) -> Params:
        """The initial parameters: the model's init as it is."""
        return params

    # -- minibatches (per group) ----------------------------------------------------------

    def minibatch(self, stream: Data, t: jax.Array, shared=None):
        """Step t's (B, n) inputs and (B,) labels of one group's stream."""
        if self.online and self.parity:
            return online_minibatch(stream.order_key, t, stream.secret, stream.noise,
                                    self.batch)
        if self.online:
            return online_target_minibatch(self, stream.order_key, t, stream.coords,
                                           stream.draw, stream.noise, self.batch)
        idx = minibatch_indices(stream.order_key, t, stream.m, self.batch)  # (B,)
        return stream.x_train[idx], stream.y_train[idx]

    def interval_draws(self, stream: Data, ts: jax.Array):
        """What each step of an interval draws, computed up front: the minibatch indices
        (``interval_indices``); online streams draw their fresh samples in the step."""
        if self.online:
            return ts
        return interval_indices(stream.order_key, ts, stream.m, self.batch)

    def drawn_batch(self, stream: Data, draw, shared=None):
        """The minibatch of one of ``interval_draws``' draws."""
        if self.online:
            return self.minibatch(stream, draw)
        return stream.x_train[draw], stream.y_train[draw]

    def interval_source(self, stream: Data, ts: jax.Array):
        """What the kernel (``parity_jax.kernel``) gathers an interval's minibatches from: rows
        (R, n), labels (R,) and each step's row indices (len(ts), batch) -- the training set
        and ``interval_indices``; online, the interval's fresh minibatches in order."""
        if not self.online:
            return (stream.x_train, stream.y_train,
                    interval_indices(stream.order_key, ts, stream.m, self.batch))
        x, y = jax.vmap(lambda t: self.minibatch(stream, t))(ts)
        rows = ts.shape[0] * self.batch
        return (x.reshape(rows, self.n), y.reshape(rows),
                jnp.arange(rows, dtype=jnp.int32).reshape(ts.shape[0], self.batch))

    def group_loss(self, loss: str, params: Params, x, y) -> jax.Array:
        """What a group's autodiff step differentiates: the sum of its trials' mean losses."""
        return _group_loss(loss, params, x, y)

    # -- evaluation -----------------------------------------------------------------------

    def evaluate(self, loss: str, params: Params, data: Data, shared, with_loss: bool) -> dict:
        """(G, P) "error" of every trial -- its test error (a ±1 target) or normalized test MSE
        (a real-valued one: ``targets.metric``, over ``success.success_moments``' variance),
        its train loss if ``with_loss``, and (G, P, T) "recovery" of its target's T ``terms``
        (``success.recovery``) if it has any."""
        if targets.is_binary(self.target):
            error = _test_error
        else:
            def error(p, x, y, chunk):
                return _test_nmse(p, x, y, success.success_moments(self, y)[0], chunk=chunk)
        out = {"error": jax.lax.map(lambda a: error(*a, chunk=self.eval_rows),
                                    (params, data.x_test, data.y_test))}
        if self.terms:
            out["recovery"] = jax.lax.map(
                lambda a: success.recovery(*a, self.terms, chunk=self.eval_rows),
                (params, data.x_test, data.y_test, data.coords))
        if with_loss:
            out["loss"] = self.train_loss(loss, params, data)
        return out

    def train_loss(self, loss: str, params: Params, data: Data) -> jax.Array:
        """(G, P) mean loss over each trial's training set; an online trial has none: over
        its test set."""
        G = data.m.shape[0]
        x, y, m = ((data.x_test, data.y_test, jnp.full((G,), self.n_test)) if self.online
                   else (data.x_train, data.y_train, data.m))
        return jax.lax.map(lambda a: _train_loss(loss, *a, chunk=self.eval_rows),
                           (params, x, y, m))

    def final(self, loss: str, params: Params, data: Data, shared) -> dict:
        """Metrics measured once, at the end: the train loss."""
        return {"loss": self.train_loss(loss, params, data)}
