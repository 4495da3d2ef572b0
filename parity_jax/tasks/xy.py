"""Tabular (X, y) classification as a task of the core (docs/DESIGN.md §1.12, §2.4).

Every trial of a program shares the dataset's splits (``Shared``: training, validation and test
arrays, labels in {-1, +1}); a trial trains on its own downsampled training set, the first m rows
of its own order of the training rows. One trial per group: each draws its own minibatches.
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
from flax import struct

from parity_jax import models
from parity_jax.models import Params
from parity_jax.tasks import interval_indices, minibatch_indices, typed_key

# Rows of the evaluation sets per forward pass, and activations (floats) per lax.map batch.
EVAL_ROWS, EVAL_FLOATS = 2048, 1 << 25


@struct.dataclass
class Shared:
    """The dataset every trial of a program shares (labels in {-1, +1}, float32)."""

    x_train: jax.Array  # (n_train, d)
    y_train: jax.Array
    x_val: jax.Array
    y_val: jax.Array
    x_test: jax.Array
    y_test: jax.Array

    @classmethod
    def from_splits(cls, splits) -> Shared:
        """From ``datasets.Splits`` (0/1 labels) to device arrays with labels in {-1, +1}."""
        def pm(y):
            return jnp.asarray(2.0 * y - 1.0, jnp.float32)

        return cls(jnp.asarray(splits.x_train), pm(splits.y_train), jnp.asarray(splits.x_val),
                   pm(splits.y_val), jnp.asarray(splits.x_test), pm(splits.y_test))


@struct.dataclass
class Inputs:
    """Per-trial (T,) inputs of a tabular batch."""

    order_key: jax.Array  # typed keys (or raw key data): minibatch order
    rows: jax.Array  # (T, n_train) int32: the trial's order of the training rows
    m: jax.Array  # int32: the trial trains on rows[:m] (its downsampled training set)


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


@dataclasses.dataclass(frozen=True)
class XYTask:
    """Static structure of a tabular task in a program (hashable: part of its shape)."""

    d: int  # input features
    n_train: int  # rows of the (full) training split
    batch: int

    packed = False  # one trial per group

    @property
    def features(self) -> int:
        return self.d

    @property
    def train_rows(self) -> int:
        return self.n_train

    @property
    def label(self) -> str:
        return "tabular (X, y)"

    def typed(self, inputs: Inputs) -> Inputs:
        return inputs.replace(order_key=typed_key(inputs.order_key))

    def prepare(self, inputs: Inputs, shared: Shared):
        """Per-trial streams (its order key, row order and m) and the shared evaluation sets."""
        evals = (_eval_sets(shared.x_val, shared.y_val), _eval_sets(shared.x_test, shared.y_test))
        return inputs, (shared, evals)

    def initial(self, params: Params, inputs: Inputs) -> Params:
        return params

    def minibatch(self, stream: Inputs, t: jax.Array, shared):
        """Step t's (B, d) inputs and (B,) labels of one trial."""
        return self.drawn_batch(stream, minibatch_indices(stream.order_key, t, stream.m,
                                                          self.batch), shared)

    def interval_draws(self, stream: Inputs, ts: jax.Array):
        return interval_indices(stream.order_key, ts, stream.m, self.batch)

    def drawn_batch(self, stream: Inputs, draw, shared):
        data, _ = shared
        idx = stream.rows[draw]
        return data.x_train[idx], data.y_train[idx]

    def group_loss(self, loss: str, params: Params, x, y) -> jax.Array:
        """A trial's mean minibatch loss."""
        return jnp.mean(models.loss_fn(loss, models.apply(params, x), y))

    def evaluate(self, loss: str, params: Params, streams, shared, with_loss: bool) -> dict:
        """(T,) validation loss and error and test error of every trial."""
        _, (val_sets, test_sets) = shared
        val_loss, val_error = _evaluate(loss, params, val_sets)
        _, test_error = _evaluate(loss, params, test_sets)
        return {"val_loss": val_loss, "val_error": val_error, "test_error": test_error}

    def final(self, loss: str, params: Params, streams, shared) -> dict:
        return {}


def _evaluate(loss: str, params: Params, sets) -> tuple[jax.Array, jax.Array]:
    """(T,) mean loss and (T,) error (sign(f) != y; f = 0 is an error) of every trial on one
    evaluation set, in row chunks and trial batches that bound the activations."""
    x, y, w, N = sets
    T, W = params.a.shape
    per_batch = max(1, min(T, EVAL_FLOATS // (x.shape[1] * W)))  # x: (chunks, C, d)

    def trial(p):
        def chunk(acc, xs):
            xc, yc, wc = xs
            f = models.apply(p, xc)
            return acc + jnp.stack([jnp.sum(wc * models.loss_fn(loss, f, yc)),
                                    jnp.sum(wc * (jnp.sign(f) != yc))]), None

        return jax.lax.scan(chunk, jnp.zeros(2), (x, y, w))[0] / N

    out = jax.lax.map(trial, params, batch_size=per_batch)
    return out[:, 0], out[:, 1]
