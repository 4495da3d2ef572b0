"""The (n, k) sparse-parity task: secret set, training set, test set, minibatch order.

Every random draw is indexed (row i from ``fold_in(key, i)``, step t from ``fold_in(key, t)``)
so a trial's data never depends on the padded shapes of the batch it runs in: the first m rows
of an M-row training set are the same m rows a lone trial would draw, and nested sizes give
nested sets (the m=200 training set is a prefix of the m=500 one for the same data seed).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

# Sub-streams of a trial's data key.
_SECRET, _TRAIN, _TEST, _NOISE, _ORDER = range(5)


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


def minibatch_indices(order_key: jax.Array, t: jax.Array, m: jax.Array, batch: int) -> jax.Array:
    """Indices of step t's minibatch: ``batch`` draws from [0, m) with replacement."""
    return jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)
