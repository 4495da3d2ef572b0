"""Tasks: what a batch of trials learns. Each task owns its data, its minibatch draw and its
evaluation (docs/DESIGN.md §2); the core (``parity_jax.core``) trains any of them.

- ``parity``: the (n, k) sparse task, data generated inside the program: parity by default,
  or any target of ``targets`` (majority, staircase, polynomial, hermite, registered ones) on
  Boolean or Gaussian inputs.
- ``targets``: the registry of targets of the k secret coordinates; ``sample``: a trial's
  training rows as it sees them.
- ``xy``: tabular classification on shared (X, y) arrays, per-trial training subsets.
"""

import jax
import jax.numpy as jnp


def typed_key(key: jax.Array) -> jax.Array:
    """A typed key, from raw key data if need be (multi-host global arrays carry keys as
    uint32 data)."""
    if jnp.issubdtype(key.dtype, jax.dtypes.prng_key):
        return key
    return jax.random.wrap_key_data(key)


def interval_indices(order_key: jax.Array, ts: jax.Array, m: jax.Array, batch: int):
    """(len(ts), batch) minibatch indices of the steps ``ts`` in one vectorised draw (the same
    numbers as one ``minibatch_indices`` call per step: on a CPU each threefry call is a small
    loop of its own)."""
    return jax.vmap(lambda t: minibatch_indices(order_key, t, m, batch))(ts)


def minibatch_indices(order_key: jax.Array, t: jax.Array, m: jax.Array, batch: int) -> jax.Array:
    """Indices of step t's minibatch: ``batch`` draws from [0, m) with replacement, from
    ``fold_in(order_key, t)`` -- the one minibatch draw of every task."""
    return jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)
