"""Test oracles: one unpadded trial written plainly (``models.apply``, ``jax.grad``, the
textbook optax optimizer), which the core's batched, packed, padded programs must equal.
Used by the tests and the bench; never by the core."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from parity_jax import models
from parity_jax.models import Params
from parity_jax.tasks import minibatch_indices
from parity_jax.tasks.sparse import make_data, online_minibatch
from parity_jax.tasks.xy import Shared


def reference_params(
    data_key, init_key, *, n, k, m, noise, width, depth, sparse, s, lr, wd, batch, loss, steps,
    online=False,
) -> Params:
    """Parameters of one parity trial after ``steps`` plain SGD steps (no evaluation, no
    stopping): docs/DESIGN.md §1 with the unpadded width and ``optax``. ``m``, ``width``,
    ``steps`` are Python ints; ``online``: each step's minibatch is fresh, ``m`` is unused.
    """
    data = make_data(data_key, n, k, m, noise, m, 1)
    params = models.init_params(init_key, n, width, depth, width, sparse, s)
    opt = optax.inject_hyperparams(
        lambda lr, wd: optax.chain(optax.add_decayed_weights(wd), optax.sgd(lr))
    )(lr=lr, wd=wd)

    def step(carry, t):
        p, opt_state = carry
        if online:
            xb, yb = online_minibatch(data.order_key, t, data.secret, noise, batch)
        else:
            idx = minibatch_indices(data.order_key, t, data.m, batch)
            xb, yb = data.x_train[idx], data.y_train[idx]

        def loss_of(p):
            return jnp.mean(models.loss_fn(loss, models.apply(p, xb), yb))

        updates, opt_state = opt.update(jax.grad(loss_of)(p), opt_state, p)
        return (optax.apply_updates(p, updates), opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return params


def reference_xy(data: Shared, init_key, order_key, rows, *, m: int, width: int, depth: int,
                 sparse: bool, s: int, lr: float, wd: float, batch: int, steps: int,
                 optimizer: str) -> Params:
    """One unpadded tabular trial (logistic loss): its parameters after ``steps`` steps, with
    the textbook optax optimizer built from Python floats."""
    d = data.x_train.shape[1]
    params = models.init_params(init_key, d, width, depth, width, sparse, s)
    base = optax.adam(lr) if optimizer == "adam" else optax.sgd(lr)
    opt = optax.chain(optax.add_decayed_weights(wd), base)

    def step(carry, t):
        p, st = carry
        i = rows[jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)]
        xb, yb = data.x_train[i], data.y_train[i]
        g = jax.grad(lambda p: jnp.mean(models.loss_fn("logistic", models.apply(p, xb), yb)))(p)
        updates, st = opt.update(g, st, p)
        return (optax.apply_updates(p, updates), st), None

    (params, _), _ = jax.lax.scan(step, (params, opt.init(params)),
                                  jnp.arange(steps, dtype=jnp.int32))
    return params
