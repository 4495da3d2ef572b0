"""Tasks: what a batch of trials learns. Each task owns its data, its minibatch draw and its
evaluation (docs/DESIGN.md §2); the core (``parity_jax.core``) trains any of them.

- ``parity``: the (n, k) sparse-parity task, data generated inside the program.
- ``xy``: tabular classification on shared (X, y) arrays, per-trial training subsets.
"""

import jax


def minibatch_indices(order_key: jax.Array, t: jax.Array, m: jax.Array, batch: int) -> jax.Array:
    """Indices of step t's minibatch: ``batch`` draws from [0, m) with replacement, from
    ``fold_in(order_key, t)`` -- the one minibatch draw of every task."""
    return jax.random.randint(jax.random.fold_in(order_key, t), (batch,), 0, m)
